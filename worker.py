"""The worker entry point: workflows plus activities with their clients injected."""

from __future__ import annotations

import asyncio
import importlib.util
import py_compile
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import structlog
from temporalio import activity as temporal_activity
from temporalio.client import Client
from temporalio.worker import Interceptor, Worker

from activities.evaluation import EvaluationActivities
from activities.gitlab import GitLabActivities
from activities.notify import NotifyActivities
from activities.rollout import Flag, RolloutActivities
from activities.rollout_issues import RolloutIssueActivities
from activities.rollout_payloads import FlagKind, FlagTarget
from activities.watch import WatchActivities
from model_migration import observability
from model_migration.catalog import load_catalog
from model_migration.clients.ai_gateway import AiGatewayClient
from model_migration.clients.experiments import ExperimentServiceClient
from model_migration.clients.flag_targets import GitLabInstanceFlag, GitLabProjectFlag, UnleashFlag
from model_migration.clients.gitlab import GitLabClient, WaitGate
from model_migration.clients.gitlab_labels import UserDirectory
from model_migration.clients.harness import Harness, HarnessKind, ImportedResults
from model_migration.clients.notifier import LogNotifier, notifier_from
from model_migration.clients.pipeline_harness import pipeline_harness_factory
from model_migration.clients.prometheus import PrometheusClient
from model_migration.clients.promptfoo_harness import promptfoo_harness_factory
from model_migration.clients.results_store import LocalResultsStore
from model_migration.clients.unleash import UnleashAdmin
from model_migration.deprecations import TemporalDeprecations
from model_migration.domain.errors import DomainError, ErrorType, GitLabError
from model_migration.domain.models import User
from model_migration.health import Health
from model_migration.metrics import GitLabActivityMetrics
from model_migration.promptfoo_setup import check_promptfoo, installed_version
from model_migration.settings import Settings
from model_migration.temporal import connect
from workflows.deprecation import ModelDeprecationWorkflow
from workflows.evaluation import EvaluationWorkflow
from workflows.feature import FeatureMigrationWorkflow
from workflows.migration import ModelMigrationWorkflow
from workflows.rollout import RolloutWorkflow
from workflows.tournament import TournamentWorkflow
from workflows.watch import DeprecationWatchWorkflow

WORKFLOWS = [
    ModelMigrationWorkflow, FeatureMigrationWorkflow, EvaluationWorkflow, TournamentWorkflow, ModelDeprecationWorkflow,
    DeprecationWatchWorkflow, RolloutWorkflow,
]
log = structlog.get_logger("worker")


def gitlab_factory(settings: Settings, gate: WaitGate | None = None, users: UserDirectory | None = None) -> Callable[[], GitLabClient]:
    """Builds one client per activity thread; all of them share one ``WaitGate``, so that a
    429 told to one thread holds every other thread's requests too, and one ``UserDirectory``,
    so that a user is looked up once per worker, not once per thread."""
    token = settings.resolved_gitlab_token()
    if token is None:
        raise DomainError(
            "no GitLab token: set MODEL_MIGRATION_GITLAB_TOKEN (or start the sandbox, which writes one)"
        )
    shared = gate if gate is not None else WaitGate()
    directory = users if users is not None else UserDirectory()

    def make() -> GitLabClient:
        return GitLabClient(
            settings.gitlab_url, token, settings.gitlab_project, settings.gitlab_group,
            timeout=settings.gitlab_timeout, gate=shared, users=directory,
        )

    return make


def evaluation_activities(settings: Settings, gate: WaitGate, users: UserDirectory) -> EvaluationActivities | None:
    """The harness and gate activities; results go to a directory in the state dir.

    The experiment service, the CI pipeline harness (pipelines of ``evaluation_project``) and
    teams' published results are always there; promptfoo when it is installed. A catalog that
    names promptfoo for a feature makes a missing promptfoo stop the start with one line:
    that feature could never be evaluated, and no other harness stands in for it."""
    token = settings.resolved_gitlab_token()
    if token is None:
        return None
    url = settings.resolved_evaluation_url()
    harnesses: dict[HarnessKind, Callable[[], Harness]] = {
        HarnessKind.EXPERIMENT_SERVICE: lambda: ExperimentServiceClient(url, token, gate=gate),
        HarnessKind.CI_PIPELINE: pipeline_harness_factory(settings, gate, users),
        HarnessKind.IMPORTED: lambda: ImportedResults({settings.gitlab_url: token, url: token}),
    }
    needs_promptfoo = [f.name for f in load_catalog(settings.catalog_dir).features if f.evaluation.harness == HarnessKind.PROMPTFOO]
    if needs_promptfoo:
        try:
            check_promptfoo(settings)
        except DomainError as err:
            raise DomainError(f"{', '.join(needs_promptfoo)} evaluate with promptfoo: {err.message}", type=err.type) from None
    if needs_promptfoo or installed_version(settings.resolved_promptfoo_dir()) is not None:
        harnesses[HarnessKind.PROMPTFOO] = promptfoo_harness_factory(settings)
    return EvaluationActivities(harnesses, LocalResultsStore(settings.state_dir / "results"))


def rollout_activities(settings: Settings, make: Callable[[], GitLabClient], gate: WaitGate, users: UserDirectory) -> RolloutActivities:
    """Flag writes on every flag target the settings configure, and Prometheus for the analysis.

    A catalog feature whose flag the engine drives on a target this worker cannot reach (no
    Prometheus, no Unleash server) stops the start with one line: that rollout could never run."""
    flags: dict[FlagKind, Callable[[FlagTarget], Flag]] = {}

    def other_instance(env: str, url: str) -> GitLabClient:
        token = settings.flag_instance_tokens.get(env)
        if token is None:
            raise DomainError(f"no token for the {env} GitLab instance: set MODEL_MIGRATION_FLAG_INSTANCE_TOKENS",
                              type=ErrorType.INVALID_INPUT)
        return GitLabClient(url, token, settings.gitlab_project, settings.gitlab_group, timeout=settings.gitlab_timeout,
                            gate=gate, users=users)

    def instance(target: FlagTarget) -> Flag:
        others = {env: other_instance(env, url) for env, url in settings.flag_instances.items() if env in target.environments}
        return GitLabInstanceFlag(make(), target.name, environments=others)

    def project(target: FlagTarget) -> Flag:
        token = settings.resolved_gitlab_token()
        assert token is not None  # gitlab_factory refused to build without one
        client = GitLabClient(settings.gitlab_url, token, settings.flag_project or settings.gitlab_project, settings.gitlab_group,
                              timeout=settings.gitlab_timeout, gate=gate, users=users)
        return GitLabProjectFlag(client, target.name, team_members=settings.flag_team_members, environments=target.environments)

    flags[FlagKind.GITLAB_INSTANCE] = instance
    flags[FlagKind.GITLAB_PROJECT] = project
    unleash = unleash_flags(settings)
    if unleash is not None:
        flags[FlagKind.UNLEASH] = unleash
    driven = [f for f in load_catalog(settings.catalog_dir).features if f.rollout.target is not None]
    missing = [f"{f.name} ({f.rollout.target})" for f in driven if f.rollout.target not in flags]
    if missing:
        raise DomainError(f"{', '.join(missing)} roll out on Unleash: set MODEL_MIGRATION_UNLEASH_URL and MODEL_MIGRATION_UNLEASH_TOKEN",
                          type=ErrorType.INVALID_INPUT)
    if driven and not settings.prometheus_url:
        names = ", ".join(f.name for f in driven)
        raise DomainError(f"{names} roll out by the engine, whose analysis reads Prometheus: set MODEL_MIGRATION_PROMETHEUS_URL",
                          type=ErrorType.INVALID_INPUT)

    def metrics() -> PrometheusClient:
        if not settings.prometheus_url:
            raise DomainError("no Prometheus is configured for the rollout analysis: set MODEL_MIGRATION_PROMETHEUS_URL",
                              type=ErrorType.INVALID_INPUT)
        return PrometheusClient(settings.prometheus_url, timeout=settings.gitlab_timeout)

    return RolloutActivities(flags, metrics)


def unleash_flags(settings: Settings) -> Callable[[FlagTarget], Flag] | None:
    """Flags on the Unleash server of the settings, if one is configured."""
    if not settings.unleash_url or settings.unleash_token is None:
        return None
    url, token = settings.unleash_url, settings.unleash_token.get_secret_value()

    def make(target: FlagTarget) -> Flag:
        admin = UnleashAdmin(url, token, project=settings.unleash_project, timeout=settings.gitlab_timeout)
        return UnleashFlag(admin, target.name, environments=settings.unleash_environments)

    return make


def watch_activities(settings: Settings, client: Client) -> WatchActivities:
    """The deprecation watch: the catalog and the AI gateway read, deprecations started on this worker's task queue."""
    catalog = load_catalog(settings.catalog_dir)
    deprecations = TemporalDeprecations(client, settings.task_queue, catalog, settings.initiative_epic)
    return WatchActivities(deprecations, catalog, lambda: AiGatewayClient(settings.resolved_ai_gateway_url()))


def check_gitlab(make: Callable[[], GitLabClient]) -> User:
    """Ask GitLab who the token belongs to, before the worker takes any task: a wrong URL or
    token then stops the start with one line, instead of failing every activity later."""
    with make() as client:
        try:
            return client.whoami()
        except GitLabError as err:
            if err.type != ErrorType.GITLAB_AUTH or err.status != 401:
                raise
            raise GitLabError(
                f"{err.message}; set MODEL_MIGRATION_GITLAB_TOKEN", type=err.type, status=err.status
            ) from None


def write_workflow_bytecode() -> None:
    """Put the workflow modules' bytecode on disk, once per worker.

    The workflow sandbox imports each workflow's module afresh for every run it starts. With
    no bytecode on disk (``PYTHONDONTWRITEBYTECODE``, as container images often set, or an
    editable install) every one of those imports compiles the source again: about half of
    what starting a run costs the worker. Only these modules are written; an install that
    cannot be written to keeps working, just slower.
    """
    for workflow_class in WORKFLOWS:
        source = sys.modules[workflow_class.__module__].__file__
        if source is None:
            continue
        try:
            py_compile.compile(source, cfile=importlib.util.cache_from_source(source), doraise=True)
        except (OSError, py_compile.PyCompileError) as err:
            log.info("workflow_bytecode_not_written", module=workflow_class.__module__, reason=str(err))


def build_worker(
    client: Client,
    task_queue: str,
    gitlab: GitLabActivities,
    executor: ThreadPoolExecutor,
    notify: NotifyActivities | None = None,
    interceptors: Sequence[Interceptor] = (),
    evaluation: EvaluationActivities | None = None,
    watch: WatchActivities | None = None,
    rollout: RolloutActivities | None = None,
    rollout_issues: RolloutIssueActivities | None = None,
    graceful_shutdown: timedelta = timedelta(0),
    max_cached_workflows: int = 1000,
) -> Worker:
    """``graceful_shutdown``: how long a stopping worker lets running activities finish before it cancels them;
    ``max_cached_workflows``: its sticky cache (``MODEL_MIGRATION_MAX_CACHED_WORKFLOWS``)."""
    notify = notify or NotifyActivities(LogNotifier())
    extra = evaluation.all() if evaluation is not None else []
    extra += [watch.watch_deprecations] if watch is not None else []
    on_gitlab = gitlab.all()
    if rollout is not None:  # the flags and metrics, and the rollout's two issues
        issue_activities = (rollout_issues or RolloutIssueActivities(gitlab)).all()
        extra += [*rollout.all(), *issue_activities]
        on_gitlab += issue_activities
    write_workflow_bytecode()
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[*gitlab.all(), notify.notify, *extra],
        activity_executor=executor,
        max_concurrent_activities=executor._max_workers,
        interceptors=[*interceptors, GitLabActivityMetrics(activity_names(on_gitlab))],
        graceful_shutdown_timeout=graceful_shutdown,
        max_cached_workflows=max_cached_workflows,
    )


def activity_names(functions: Sequence[Callable[..., object]]) -> list[str]:
    return [name for fn in functions if (name := temporal_activity._Definition.must_from_callable(fn).name)]


async def run(
    settings: Settings,
    client: Client,
    stop: asyncio.Event | None = None,
    gitlab: GitLabActivities | None = None,
    health: Health | None = None,
) -> None:
    """Run until ``stop`` is set (or SIGINT/SIGTERM when run from a terminal).

    ``health`` turns ready once the worker polls and unready when it starts to drain: it stops
    polling and gives running activities ``settings.graceful_shutdown`` seconds to finish.

    Raises ``GitLabError`` (one line, no token) before starting when GitLab cannot be reached
    or refuses the token; the command line then exits non-zero."""
    stop = stop or asyncio.Event()
    gate, users = WaitGate(), UserDirectory()
    make = gitlab_factory(settings, gate, users)
    me = await asyncio.to_thread(check_gitlab, make)
    gitlab = gitlab or GitLabActivities(make)
    evaluation = evaluation_activities(settings, gate, users)
    rollout = rollout_activities(settings, make, gate, users)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            break
    with ThreadPoolExecutor(max_workers=32) as executor:
        notify = NotifyActivities(notifier_from(settings))
        watch = watch_activities(settings, client)
        issues = RolloutIssueActivities(gitlab, settings.prometheus_url or "", settings.grafana_url or "")
        tracing = observability.tracing()
        worker = build_worker(client, settings.task_queue, gitlab, executor, notify=notify, evaluation=evaluation, watch=watch,
                              rollout=rollout, rollout_issues=issues, interceptors=tracing.interceptors,
                              graceful_shutdown=timedelta(seconds=settings.graceful_shutdown),
                              max_cached_workflows=settings.max_cached_workflows)
        if not settings.initiative_epic:
            log.info("initiative_epic_unset", detail="migrations are not filed under an initiative epic; "
                     "set MODEL_MIGRATION_INITIATIVE_EPIC=<group>&<iid> to file them")
        log.info("worker_started", task_queue=settings.task_queue, temporal=settings.temporal_address,
                 gitlab=settings.gitlab_url, project=settings.gitlab_project, gitlab_user=me.username)
        try:
            async with worker:
                while not (worker.is_running or worker.is_shutdown or stop.is_set()):
                    await asyncio.sleep(0.05)  # the worker checks the namespace, then starts its pollers
                if health is not None and worker.is_running:
                    health.ready = True
                await stop.wait()
                if health is not None:
                    health.ready = False
                log.info("worker_draining", graceful_shutdown=settings.graceful_shutdown)
        finally:
            tracing.shutdown()
    log.info("worker_stopped", gitlab_calls=dict(gitlab.calls))


async def serve(settings: Settings) -> None:
    """``model-migration worker``: the metrics runtime and the health endpoint, then the worker.

    A metrics or health address that is malformed or taken stops the start with one line."""
    runtime = observability.worker_runtime(settings)
    health = Health()
    if settings.health_address:
        await health.start(settings.health_address)
    try:
        await run(settings, await connect(settings, runtime=runtime), health=health)
    finally:
        await health.stop()


if __name__ == "__main__":
    from model_migration.cli import main

    main(["worker"])
