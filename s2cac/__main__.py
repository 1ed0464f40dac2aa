from s2cac.cli import main

raise SystemExit(main())
