# Stage 4: semi-supervised training (GPU when present). One model folder per
# experiment x labeled ratio x fold x seed; rerunning a killed job resumes from checkpoint_latest.pth
# (only checkpoint_final.pth, the curves and the log are declared outputs, so Snakemake never deletes the
# intermediate checkpoints of an interrupted job).


rule train:
    input:
        plans=f"results/nnunet/preprocessed/{NNUNET_FOLDER}/nnUNetPlans.json",
        split="results/splits/{dataset}/seed{seed}/fold{fold}/labeled{ratio}.json",
    output:
        final="results/models/{dataset}/{experiment}/labeled{ratio}/fold{fold}/seed{seed}/checkpoint_final.pth",
        curves=report(
            "results/models/{dataset}/{experiment}/labeled{ratio}/fold{fold}/seed{seed}/curves.png",
            caption="../report/curves.rst",
            category="Training",
            labels={"experiment": "{experiment}", "labeled": "{ratio}%", "fold": "{fold}", "seed": "{seed}"},
        ),
    params:
        method=get_method,  # execution settings (training.device, threads, data_workers) are not params: no retrain
        version=STAGE_VERSIONS["train"],  # code edits re-run no training unless this is bumped (s2cac/stages.py)
    log:
        "logs/train/{dataset}/{experiment}/labeled{ratio}/fold{fold}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/train/{dataset}/{experiment}/labeled{ratio}/fold{fold}/seed{seed}.tsv"
    threads: TRAINING["threads"]  # schema default 2; a profile's set-threads overrides it
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=24 * 60,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/train.py"
