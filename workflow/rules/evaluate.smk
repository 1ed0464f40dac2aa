# Stage 6: segmentation and clinical agreement of each model's test predictions against the reference
# (orCaScore-style metrics, Agatston/volume agreement, risk categories).


rule evaluate:
    input:
        predictions="results/predict/{dataset}/{experiment}/labeled{ratio}/fold{fold}/seed{seed}",
        cases="results/data/{dataset}/cases.tsv",
        split="results/splits/{dataset}/seed{seed}/fold{fold}/labeled{ratio}.json",
    output:
        summary="results/evaluate/{dataset}/{experiment}/labeled{ratio}/fold{fold}/seed{seed}/summary.json",
        per_case="results/evaluate/{dataset}/{experiment}/labeled{ratio}/fold{fold}/seed{seed}/per_case.csv",
        table="results/evaluate/{dataset}/{experiment}/labeled{ratio}/fold{fold}/seed{seed}/summary.csv",
        figures=report(
            directory("results/evaluate/{dataset}/{experiment}/labeled{ratio}/fold{fold}/seed{seed}/figures"),
            patterns=["{name}.png"],
            caption="../report/evaluation.rst",
            category="Evaluation",
            labels={"experiment": "{experiment}", "labeled": "{ratio}%", "fold": "{fold}", "seed": "{seed}",
                    "figure": "{name}"},
        ),
    params:
        options=config["evaluate"],
        version=STAGE_VERSIONS["evaluate"],
        threshold_hu=config["predict"]["threshold_hu"],  # one threshold: the masks were cut at it, scores use it
        **LABEL_PARAMS,  # labels: arteries -> per-artery agreement of predicted and reference arteries
    log:
        "logs/evaluate/{dataset}/{experiment}/labeled{ratio}/fold{fold}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/evaluate/{dataset}/{experiment}/labeled{ratio}/fold{fold}/seed{seed}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/evaluate.py"
