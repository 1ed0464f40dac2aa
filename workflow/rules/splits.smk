# Stage 3: labeled / unlabeled / negative / validation / test lists, per seed, fold and labeled ratio.


rule splits:
    input:
        cases="results/data/{dataset}/cases.tsv",
    output:
        nnunet="results/splits/{dataset}/seed{seed}/splits_final.json",
        roles=[f"results/splits/{{dataset}}/seed{{seed}}/fold{fold}/labeled{tag}.json"
               for fold in range(SPLITS["n_folds"]) for tag in RATIO_TAGS],
    params:
        test_fraction=SPLITS["test_fraction"],
        test_seed=SPLITS["test_seed"],
        n_folds=SPLITS["n_folds"],
        labeled_ratios=SPLITS["labeled_ratios"],
        version=STAGE_VERSIONS["splits"],
    log:
        "logs/splits/{dataset}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/splits/{dataset}/seed{seed}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/splits.py"
