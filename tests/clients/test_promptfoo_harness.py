"""The promptfoo harness with the real promptfoo CLI, offline on the sandbox's simulator, into the gate.

promptfoo must be installed (``model-migration setup-promptfoo``); without it these tests fail
and say so. A 240-example run of two providers takes about 25 s here (a Python process per
provider call), so one run is full size and the others evaluate the first examples of the
dataset (``max_examples``), enough for the gate's minimum of 100 where a verdict is asked for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import gitlab_sandbox
from gitlab_sandbox.experiments import plan_run, settle
from gitlab_sandbox.model_simulator import ModelSimulator, load_config
from model_migration.catalog import load_catalog
from model_migration.clients.experiments import EVALUATORS, ExperimentRequest, ExperimentState, HarnessError
from model_migration.clients.promptfoo_config import promptfoo_config, read_dataset
from model_migration.clients.promptfoo_harness import PromptfooHarness, promptfoo_harness_factory
from model_migration.domain.commands import Verdict
from model_migration.domain.errors import DomainError, ErrorType
from model_migration.domain.evaluation import EvaluationSpec
from model_migration.domain.gate import PairedExample, evaluate_gate
from model_migration.promptfoo_setup import PROMPTFOO_VERSION, check_promptfoo
from model_migration.settings import Settings
from tests.cli.run import cli, env
from tests.e2e.cli import one_line_error

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = Path(gitlab_sandbox.__file__).resolve().parent
DATASETS = SANDBOX / "datasets"
DATASET = "duo_chat.questions.v3"  # the Duo Chat feature's catalog dataset
PROVIDER = f"file://{SANDBOX / 'promptfoo_provider.py'}"
GRADER = f"file://{SANDBOX / 'promptfoo_grader.js'}"
#: No metadata-server probe (nothing here is on a cloud); simulated latencies at a tenth, so a run is quick.
OFFLINE = {"METADATA_SERVER_DETECTION": "none", "GITLAB_SANDBOX_PROMPTFOO_LATENCY_SCALE": "0.1"}


@pytest.fixture(scope="module")
def promptfoo_dir() -> Path:
    """The installed CLI; its absence fails the test, naming the command that installs it."""
    directory = Settings().resolved_promptfoo_dir()
    directory = directory if directory.is_absolute() else ROOT / directory
    try:
        check_promptfoo(Settings(promptfoo_dir=directory))
    except DomainError as err:
        pytest.fail(str(err), pytrace=False)
    return directory


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("promptfoo-runs")


def harness(promptfoo_dir: Path, work_dir: Path, **options: object) -> PromptfooHarness:
    settings: dict[str, object] = {"provider": PROVIDER, "grader": GRADER, "concurrency": 8, "env": OFFLINE, **options}
    return PromptfooHarness(promptfoo_dir, work_dir, DATASETS, **settings)  # type: ignore[arg-type]


def request(model: str, evaluators: tuple[str, ...] = EVALUATORS) -> ExperimentRequest:
    return ExperimentRequest(
        dataset=DATASET, prompt_id="chat/react", prompt_version="1.0.0-dev", model=model,
        baseline_model="sim-baseline", baseline_prompt_version="1.0.0", evaluators=evaluators,
    )


def settled(make: PromptfooHarness, run_id: str, timeout: float = 180.0) -> ExperimentState:
    deadline = time.monotonic() + timeout
    while (state := make.state(run_id)).state == "running":
        assert time.monotonic() < deadline, f"promptfoo run {run_id} still running after {timeout} s"
        time.sleep(0.3)
    return state


def run(make: PromptfooHarness, wanted: ExperimentRequest) -> tuple[PairedExample, ...]:
    run_id = make.register(wanted)
    state = settled(make, run_id)
    assert state.state == "complete", state.reason
    return make.results(run_id)


@pytest.fixture(scope="module")
def passing(promptfoo_dir: Path, work_dir: Path) -> tuple[PairedExample, ...]:
    """The full-size run: sim-pass against sim-baseline on all 240 examples, every evaluator."""
    return run(harness(promptfoo_dir, work_dir), request("sim-pass"))


def test_a_passing_candidate_passes_the_gate(passing: tuple[PairedExample, ...]) -> None:
    """sim-pass against sim-baseline, run by promptfoo on the whole dataset, passes the feature's default gate."""
    assert len(passing) == len(read_dataset(DATASETS, DATASET)) == 240
    result = evaluate_gate(passing, EvaluationSpec().gate_config(), dataset=DATASET, baseline="sim-baseline", candidate="sim-pass")
    assert result.verdict == Verdict.PASS, result.reason


def test_a_failing_candidate_fails_the_gate(promptfoo_dir: Path, work_dir: Path) -> None:
    """sim-fail against sim-baseline (the first 120 examples, the gate's evaluators) fails, on correctness."""
    spec = EvaluationSpec()
    examples = run(harness(promptfoo_dir, work_dir, max_examples=120), request("sim-fail", spec.evaluators))
    assert len(examples) == 120 and set(examples[0].candidate.scores) == set(spec.evaluators)
    result = evaluate_gate(examples, spec.gate_config(), dataset=DATASET, baseline="sim-baseline", candidate="sim-fail")
    assert result.verdict == Verdict.FAIL, result.reason
    assert "correctness" in {m.name for m in result.metrics if m.decision == Verdict.FAIL}


def test_scores_come_back_on_each_metrics_scale_as_the_experiment_service_draws_them(passing: tuple[PairedExample, ...]) -> None:
    """Judges 1–4, similarity 0–1 and exact match 0/1 equal the sandbox service's own results; latency is measured."""
    body = {**request("sim-pass").model_dump(), "evaluators": list(EVALUATORS)}
    body["baseline"] = {"model": "sim-baseline", "prompt_version": "1.0.0"}
    service = {e["example_id"]: e for e in settle(plan_run(body, ModelSimulator(load_config()))).examples or []}
    assert [e.example_id for e in passing] == list(service)
    for example in passing:
        for side in ("baseline", "candidate"):
            ours, theirs = getattr(example, side), service[example.example_id][side]
            assert ours.scores == {name: float(theirs[name]) for name in EVALUATORS}, (example.example_id, side)
            assert not ours.error and ours.latency_ms > 0
    judged = {example.candidate.scores["correctness"] for example in passing}
    assert judged <= {1.0, 2.0, 3.0, 4.0} and len(judged) >= 3
    assert {example.baseline.scores["exact_match"] for example in passing} == {0.0, 1.0}


def test_a_run_outlives_the_worker_and_a_fresh_harness_resumes_it(promptfoo_dir: Path, tmp_path: Path) -> None:
    """A worker that registered a run and was killed leaves it running; a new process polls the same id to results."""
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    lines = (DATASETS / f"{DATASET}.jsonl").read_text(encoding="utf-8").splitlines()[:30]
    (datasets / f"{DATASET}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = {
        "MODEL_MIGRATION_STATE_DIR": str(tmp_path / "state"), "MODEL_MIGRATION_PROMPTFOO_DIR": str(promptfoo_dir),
        "MODEL_MIGRATION_DATASETS_DIR": str(datasets), "MODEL_MIGRATION_PROMPTFOO_PROVIDER": PROVIDER,
        "MODEL_MIGRATION_PROMPTFOO_GRADER": GRADER,
    }
    worker = textwrap.dedent(
        f"""
        import os, signal
        from model_migration.clients.experiments import ExperimentRequest
        from model_migration.clients.promptfoo_harness import promptfoo_harness_factory
        from model_migration.settings import Settings
        wanted = ExperimentRequest.model_validate_json({request("sim-pass").model_dump_json()!r})
        print(promptfoo_harness_factory(Settings())().register(wanted), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    environ = {**os.environ, **settings, **OFFLINE}
    died = subprocess.run([sys.executable, "-c", worker], env=environ, capture_output=True, text=True, timeout=60)
    assert died.returncode == -signal.SIGKILL, died.stderr
    run_id = died.stdout.strip()

    fresh = promptfoo_harness_factory(Settings(**{k.removeprefix("MODEL_MIGRATION_").lower(): v for k, v in settings.items()}))()
    assert fresh.state(run_id).state in ("running", "complete")
    state = settled(fresh, run_id)
    assert state.state == "complete" and state.example_count == 30, state.reason
    examples = fresh.results(run_id)
    assert [e.example_id for e in examples] == [f"duo_chat-{n:04d}" for n in range(1, 31)]


def test_a_run_that_cannot_start_its_providers_fails_with_the_reason_from_its_log(promptfoo_dir: Path, work_dir: Path) -> None:
    """promptfoo refusing the config (an unknown provider) ends the run as fail, with its own words, on one line."""
    broken = harness(promptfoo_dir, work_dir, provider="no-such-provider:model", max_examples=5)
    run_id = broken.register(request("sim-pass"))
    state = settled(broken, run_id)
    assert state.state == "fail" and "promptfoo exited with code 1" in state.reason
    assert "no-such-provider" in state.reason and "\n" not in state.reason, state.reason
    with pytest.raises(HarnessError) as refused:
        broken.results(run_id)
    assert refused.value.type == ErrorType.HARNESS_REFUSED


def test_a_run_killed_before_it_finished_fails(promptfoo_dir: Path, work_dir: Path) -> None:
    """A run whose processes died (a reboot, an OOM kill) is fail, not running for ever."""
    make = harness(promptfoo_dir, work_dir, max_examples=120)
    run_id = make.register(request("sim-pass"))
    pid_file = work_dir / run_id / "runner.pid"
    deadline = time.monotonic() + 30
    while not pid_file.is_file():
        assert time.monotonic() < deadline, "the runner never wrote its pid"
        time.sleep(0.1)
    assert make.state(run_id).state == "running"
    os.killpg(os.getpgid(int(pid_file.read_text())), signal.SIGKILL)  # the group this test's run started
    state = settled(make, run_id, timeout=10)
    assert state.state == "fail" and state.reason.startswith("promptfoo stopped before it finished"), state.reason


def test_an_unknown_run_or_dataset_is_refused(promptfoo_dir: Path, work_dir: Path) -> None:
    """A run id this work directory never held, or a dataset it cannot read, is refused for good."""
    make = harness(promptfoo_dir, work_dir)
    for run_id in ("0" * 32, "../../etc"):
        with pytest.raises(HarnessError, match="no promptfoo run") as refused:
            make.state(run_id)
        assert refused.value.type == ErrorType.HARNESS_REFUSED
    for dataset in ("nope.nothing.v1", "../datasets/duo_chat.questions.v3"):
        with pytest.raises(HarnessError, match="not found") as refused:
            make.register(request("sim-pass").model_copy(update={"dataset": dataset}))
        assert refused.value.type == ErrorType.HARNESS_REFUSED


def test_the_config_is_a_real_deployment_s_by_default() -> None:
    """Without settings, the providers are the models' own promptfoo providers, the judges llm-rubric, one metric each."""
    models = {m.gitlab_identifier: m for m in load_catalog().models}
    wanted = ExperimentRequest(
        dataset=DATASET, prompt_id="chat/react", prompt_version="2.0.0-dev", model="claude_sonnet_4_5_vertex",
        baseline_model="claude_3_7_sonnet_20250219", baseline_prompt_version="1.0.0",
    )
    config = promptfoo_config(wanted, read_dataset(DATASETS, DATASET)[:3], models=models)
    baseline, candidate = config["providers"]
    assert (baseline["label"], baseline["id"]) == ("baseline", "anthropic:messages:claude-3-7-sonnet-20250219")
    assert (candidate["label"], candidate["id"]) == ("candidate", "vertex:claude-sonnet-4-5@20250929")
    assert candidate["config"]["model"] == "claude_sonnet_4_5_vertex" and candidate["config"]["prompt_version"] == "2.0.0-dev"
    asserts = config["defaultTest"]["assert"]
    assert [(a["type"], a["metric"]) for a in asserts] == [
        ("llm-rubric", "correctness"), ("llm-rubric", "readability"), ("llm-rubric", "comprehensiveness"),
        ("similar", "similarity"), ("equals", "exact_match"),
    ]
    assert "options" not in config["defaultTest"]  # promptfoo's own graders
    assert [t["vars"]["example_id"] for t in config["tests"]] == ["duo_chat-0001", "duo_chat-0002", "duo_chat-0003"]
    with pytest.raises(HarnessError, match="not in the catalog"):
        promptfoo_config(wanted.model_copy(update={"model": "sim-pass"}), [], models=models)


def test_check_promptfoo_names_the_install_command(tmp_path: Path) -> None:
    """An empty install directory is one DomainError line naming setup-promptfoo."""
    with pytest.raises(DomainError) as missing:
        check_promptfoo(Settings(promptfoo_dir=tmp_path))
    assert "model-migration setup-promptfoo" in missing.value.message and "\n" not in missing.value.message
    with pytest.raises(HarnessError, match="model-migration setup-promptfoo"):
        PromptfooHarness(tmp_path, tmp_path / "runs", DATASETS).register(request("sim-pass"))


def test_setup_promptfoo_without_node_is_one_line_naming_the_install(tmp_path: Path) -> None:
    """``setup-promptfoo`` with no node on PATH exits 2 with one line: the apt-get command and Node >= 20."""
    empty = tmp_path / "bin"
    empty.mkdir()
    done = cli("setup-promptfoo", environ=env(PATH=str(empty), MODEL_MIGRATION_PROMPTFOO_DIR=str(tmp_path / "promptfoo")))
    line = one_line_error(done)
    assert "apt-get install -y nodejs npm" in line and "Node.js >= 20" in line, line
    assert not (tmp_path / "promptfoo").exists()


def test_setup_promptfoo_twice_does_nothing_the_second_time(promptfoo_dir: Path) -> None:
    """With the pinned version installed, ``setup-promptfoo`` says so and installs nothing."""
    done = cli("setup-promptfoo", environ=env(MODEL_MIGRATION_PROMPTFOO_DIR=str(promptfoo_dir)))
    assert done.returncode == 0, done.stderr
    assert f"promptfoo {PROMPTFOO_VERSION} is already installed" in done.stdout and "nothing to do" in done.stdout
