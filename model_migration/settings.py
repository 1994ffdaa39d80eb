"""Process configuration only. Per-run tunables travel in workflow inputs instead."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODEL_MIGRATION_", extra="ignore")

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    #: TLS with the system's trusted CAs; any ``temporal_tls_*`` setting below turns TLS on as well.
    temporal_tls: bool = False
    #: The CA that signed the server's certificate (default: the system's), as a PEM file or a PEM value.
    temporal_tls_ca_file: Path | None = None
    temporal_tls_ca: SecretStr | None = None
    #: The name to verify the server's certificate against (and to send as SNI), when not the address's host.
    temporal_tls_server_name: str | None = None
    #: mTLS: the client certificate (chain) and its private key (a secret), each as a PEM file or a PEM value.
    temporal_tls_cert_file: Path | None = None
    temporal_tls_cert: SecretStr | None = None
    temporal_tls_key_file: Path | None = None
    temporal_tls_key: SecretStr | None = None
    #: Sent as ``authorization: Bearer <key>`` (Temporal Cloud's API keys); a secret. Turns TLS on.
    temporal_api_key: SecretStr | None = None
    task_queue: str = "model-migration"
    #: Payload encryption keys, a secret: JSON ``{"<key id>": "<base64 16/24/32-byte key>", ...}``. Unset: payloads
    #: are stored in plain JSON. Keep rotated-out keys here so that older histories still decode.
    codec_keys: SecretStr | None = None
    #: The key id new payloads are encrypted with; default: the only key of ``codec_keys``.
    codec_key_id: str | None = None
    #: ``model-migration codec-server``: when set, a request needs ``Authorization: Bearer <token>``; a secret.
    codec_server_token: SecretStr | None = None

    gitlab_url: str = "http://127.0.0.1:8929"
    gitlab_token: SecretStr | None = None
    gitlab_project: str = "gitlab-org/modelops/ai-model-migrations"
    gitlab_group: str = "gitlab-org"
    gitlab_timeout: float = 10.0
    #: The experiment service (the evaluation harness); default: the one the GitLab sandbox serves.
    evaluation_url: str | None = None
    #: The AI gateway whose ``/v1/models/definitions`` the deprecation watch reads (GitLab.com's is
    #: ``https://cloud.gitlab.com/ai``); default: the one the GitLab sandbox serves.
    ai_gateway_url: str | None = None
    #: The project whose pipelines run the ``ci_pipeline`` harness.
    evaluation_project: str = "gitlab-org/modelops/ai-evaluation/prompt-library"
    #: The ref those pipelines run on.
    evaluation_ref: str = "main"
    #: Where ``model-migration setup-promptfoo`` installs the promptfoo CLI; default: <state_dir>/promptfoo.
    promptfoo_dir: Path | None = None
    #: The promptfoo provider that plays the models, e.g. ``file://provider.py``; default: each model's
    #: gateway provider id. The sandbox's simulator is ``file://<gitlab_sandbox>/promptfoo_provider.py``.
    promptfoo_provider: str | None = None
    #: The grading provider of the promptfoo harness's judges (``llm-rubric``); default: promptfoo's
    #: own. The sandbox's stand-in judge is ``file://<gitlab_sandbox>/promptfoo_grader.js``.
    promptfoo_grader: str | None = None
    #: The embedding provider of its similarity (``similar``); default: ``promptfoo_grader``'s, else promptfoo's own.
    promptfoo_embedder: str | None = None
    #: How many provider calls a promptfoo run makes at once (its ``-j``).
    promptfoo_concurrency: int = 4
    #: Where the promptfoo harness reads a dataset, ``<name>.jsonl`` with ``{id, input, reference}``
    #: lines; the sandbox ships its own in ``<gitlab_sandbox>/datasets``.
    datasets_dir: Path | None = None
    #: A Slack (or Slack-compatible) incoming webhook that notices are posted to, besides the log; a secret.
    slack_webhook_url: SecretStr | None = None

    #: GitLab's "AI Model Version Migration Initiative" epic, ``<group path>&<iid>``: every
    #: migration's tracking issue is filed under it. Unset: not filed (the worker says so at start).
    initiative_epic: str | None = None

    #: Prometheus's HTTP API, which a rollout's analysis queries (e.g. ``http://prometheus:9090``).
    #: Needed when a catalog feature's flag is driven by the engine (``rollout.target``).
    prometheus_url: str | None = None
    #: Grafana, linked from the rollout-plan issue's Dashboard References when set.
    grafana_url: str | None = None
    #: ``gitlab_instance`` flags: the GitLab instance of each environment besides production
    #: (which is ``gitlab_url``), as JSON: ``{"staging": "https://staging.gitlab.com"}``.
    flag_instances: dict[str, str] = {}
    #: Their administrators' tokens, as JSON ``{"staging": "<token>"}``; secrets.
    flag_instance_tokens: dict[str, SecretStr] = {}
    #: ``gitlab_project`` flags: the project that holds them (default: ``gitlab_project``).
    flag_project: str | None = None
    #: The user ids GitLab team members have in the application, for the team-members step of a project flag.
    flag_team_members: list[str] = []
    #: ``unleash`` flags: the Unleash server, an admin API token (a secret), its project, and each
    #: ladder environment's Unleash environment as JSON.
    unleash_url: str | None = None
    unleash_token: SecretStr | None = None
    unleash_project: str = "default"
    unleash_environments: dict[str, str] = {"staging": "development", "production": "production"}

    state_dir: Path = Path(".model-migration")
    catalog_dir: Path | None = None
    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"
    #: The worker's Prometheus endpoint, ``host:port`` (e.g. ``0.0.0.0:9464``), serving ``GET /metrics``; unset: no metrics.
    metrics_address: str | None = None
    #: The worker's health endpoint, ``host:port`` (e.g. ``0.0.0.0:8080``): ``GET /live`` and ``GET /ready``; unset: none.
    health_address: str | None = None
    #: Seconds a stopping worker (SIGTERM) gives running activities to finish before it cancels them.
    graceful_shutdown: float = 30.0
    #: Workflows the worker keeps in memory between tasks (its sticky cache; the SDK's default is 1000).
    #: Fewer: less memory per open workflow, and an evicted one replays its history on its next task.
    #: 150 keeps a worker with 1,000 open features under 200 MB (bench/scale.py, bench/README.md).
    max_cached_workflows: int = Field(default=150, ge=0)

    def resolved_promptfoo_dir(self) -> Path:
        return self.promptfoo_dir or self.state_dir / "promptfoo"

    def resolved_evaluation_url(self) -> str:
        return self.evaluation_url or f"{self.gitlab_url.rstrip('/')}/api/evaluation"

    def resolved_ai_gateway_url(self) -> str:
        return self.ai_gateway_url or f"{self.gitlab_url.rstrip('/')}/ai-gateway"

    def sandbox_token_file(self) -> Path:
        return self.state_dir / "sandbox.token"

    def resolved_gitlab_token(self) -> SecretStr | None:
        """The configured token, else the one the local sandbox wrote for itself."""
        if self.gitlab_token is not None:
            return self.gitlab_token
        path = self.sandbox_token_file()
        if path.is_file():
            return SecretStr(path.read_text().strip())
        return None
