"""EmotionNet: raw FER2013-format CSV -> parsed splits -> trained CNNs -> evaluation -> report.

    snakemake --cores all                            # the embedded synthetic dataset
    snakemake --cores all --config dataset=fer2013   # data/fer2013.csv(.gz)
    snakemake --report results/report.html           # the HTML report of the finished run
"""

from snakemake.utils import min_version

min_version("9.0")


CONFIG_FILE = "config/config.yaml"


include: "workflow/rules/config_syntax.smk"


configfile: CONFIG_FILE


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/deploy.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
