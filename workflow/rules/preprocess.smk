# Stage 2: nnU-Net v2 raw dataset (HU-windowed images; binary calcium labels, or the four arteries with
# preprocess.labels: arteries) and nnU-Net's own preprocessing.


rule nnunet_raw:
    input:
        cases="results/data/{dataset}/cases.tsv",
    output:
        directory("results/nnunet/raw/Dataset{id}_{dataset}"),
    params:
        window=config["preprocess"]["hu_window"],
        version=STAGE_VERSIONS["nnunet_raw"],
        **LABEL_PARAMS,  # labels: arteries (absent for binary)
        **WINDOW_PARAMS,  # extra_windows (absent when none)
    log:
        "logs/nnunet_raw/Dataset{id}_{dataset}.log",
    benchmark:
        "logs/benchmarks/nnunet_raw/Dataset{id}_{dataset}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/nnunet_raw.py"


rule nnunet_preprocess:
    input:
        raw="results/nnunet/raw/Dataset{id}_{dataset}",
    output:
        # The data folders (nnUNetPlans_3d_fullres/, gt_segmentations/) appear together with these files
        # (one atomic rename). They are not declared as directory() outputs because Snakemake would put a
        # .snakemake_timestamp file into them, which nnU-Net's dataset-type detection refuses.
        plans="results/nnunet/preprocessed/Dataset{id}_{dataset}/nnUNetPlans.json",
        dataset_json="results/nnunet/preprocessed/Dataset{id}_{dataset}/dataset.json",
        fingerprint="results/nnunet/preprocessed/Dataset{id}_{dataset}/dataset_fingerprint.json",
    params:
        target_spacing=config["preprocess"]["target_spacing"],
        patch_size=config["preprocess"]["patch_size"],
        version=STAGE_VERSIONS["nnunet_preprocess"],
    log:
        "logs/nnunet_preprocess/Dataset{id}_{dataset}.log",
    benchmark:
        "logs/benchmarks/nnunet_preprocess/Dataset{id}_{dataset}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/nnunet_preprocess.py"
