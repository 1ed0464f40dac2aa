# Stage 5: inference on each trained model's test cases (nnU-Net sliding window, our network), then the
# exported masks (network mask AND HU >= threshold) are scored with the Agatston library.


rule predict:
    input:
        model="results/models/{dataset}/{experiment}/labeled{ratio}/fold{fold}/seed{seed}/checkpoint_final.pth",
        cases="results/data/{dataset}/cases.tsv",
        split="results/splits/{dataset}/seed{seed}/fold{fold}/labeled{ratio}.json",
    output:
        directory("results/predict/{dataset}/{experiment}/labeled{ratio}/fold{fold}/seed{seed}"),
    params:
        # device: an execution setting; calcium_probability only when it is not the argmax (0.5), so that results
        # from before the option existed stay up to date
        options={k: v for k, v in config["predict"].items()
                 if k != "device" and not (k == "calcium_probability" and v == 0.5)},
        version=STAGE_VERSIONS["predict"],
    wildcard_constraints:
        experiment=f"(?!{THRESHOLD_EXPERIMENT}/)[A-Za-z][A-Za-z0-9_]*",  # the threshold method: predict_threshold
    log:
        "logs/predict/{dataset}/{experiment}/labeled{ratio}/fold{fold}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/predict/{dataset}/{experiment}/labeled{ratio}/fold{fold}/seed{seed}.tsv"
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/predict.py"
