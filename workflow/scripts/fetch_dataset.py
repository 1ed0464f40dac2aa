"""Rule fetch_dataset: download the config's dataset.download entries (resumable, verified, unpacked safely),
then check that the data the importer needs is in place; writes a manifest."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # the repo, so conda envs import s2cac

from s2cac.runlog import logged

with logged(snakemake.log[0]):
    from s2cac.atomic import atomic_write_text
    from s2cac.datasets.run import fetch_dataset

    # The URLs are read from the config here, not passed as params: signed URLs are secrets that expire, and a
    # new signature for the same file (same sha256) must not re-run the import.
    manifest = fetch_dataset(dict(snakemake.config["dataset"]))
    atomic_write_text(snakemake.output.manifest, json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest["layout"], indent=2))
