"""Real datasets: download and verification (``download``), importers (``coca``, ``folder``) that write the case
sheet (``s2cac.data.cases``) the later stages read."""
