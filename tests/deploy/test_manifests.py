"""deploy/ checked with the tools a CI has: hadolint, kubernetes-validate, check-jsonschema and promtool, plus the
cross-checks no schema makes: settings names, probe ports, drain times, metric names, placeholders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from model_migration.settings import Settings
from tests.deploy.deploy_files import (
    DASHBOARD,
    DEPLOY,
    JOB,
    KUBERNETES,
    METRIC,
    PROMETHEUS,
    alert_rules,
    dashboard_exprs,
    dockerfile_command,
    documented_metrics,
    documents,
    env_names,
    known,
    manifest,
    manifests,
    promtool,
    run,
    tool,
    worker_container,
)

SCHEMAS = Path(__file__).parent


def test_hadolint_passes_the_dockerfile() -> None:
    """hadolint finds nothing in deploy/Dockerfile."""
    done = run(tool("hadolint"), "--no-color", DEPLOY / "Dockerfile")
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_is_pinned_multistage_nonroot_and_compiles_bytecode() -> None:
    """A pinned slim base, a builder stage, a numeric non-root user, bytecode compiled at build time, the worker as entrypoint."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base.group(1)), base
    stages = re.findall(r"^FROM \S+ AS (\S+)$", text, re.MULTILINE)
    assert {"builder", "worker", "worker-promptfoo"} <= set(stages)
    worker_stage = text.split("AS worker\n", 1)[1].split("\nFROM ", 1)[0]
    assert "COPY --from=builder /opt/venv /opt/venv" in worker_stage
    assert re.search(r"^USER 10001", worker_stage, re.MULTILINE)
    assert re.search(r"python -m compileall .*--invalidation-mode unchecked-hash /opt/venv/lib", text)
    assert dockerfile_command() == ["model-migration", "worker"]


def test_kubernetes_manifests_validate_strictly() -> None:
    """kubernetes-validate --strict accepts every built-in object under deploy/kubernetes, and refuses a misspelt field."""
    files = sorted({str(p) for p, d in manifests() if not d["apiVersion"].startswith("monitoring.coreos.com/")})
    done = run(tool("kubernetes-validate"), "--strict", "--quiet", *files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {"Deployment", "PodDisruptionBudget", "ConfigMap", "Secret", "Service"} <= {d["kind"] for _, d in manifests()}


def test_kubernetes_validate_refuses_a_typo(tmp_path: Path) -> None:
    """The strict validation above is not vacuous: a misspelt field fails it."""
    bad = tmp_path / "bad.yaml"
    bad.write_text((KUBERNETES / "worker-deployment.yaml").read_text().replace("terminationGracePeriodSeconds", "terminationGracePeriod"))
    done = run(tool("kubernetes-validate"), "--strict", "--quiet", bad)
    assert done.returncode != 0 and "terminationGracePeriod" in done.stdout + done.stderr


def test_servicemonitor_matches_its_crd_schema_and_the_service() -> None:
    """The ServiceMonitor (a CRD kubernetes-validate has no schema for) passes a schema derived from the CRD,
    and selects the worker Service's metrics port, whose name is the alert rules' job."""
    done = run(tool("check-jsonschema"), "--schemafile", SCHEMAS / "servicemonitor.schema.json", KUBERNETES / "servicemonitor.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    monitor = manifest("ServiceMonitor", JOB)
    service = manifest("Service", JOB)
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    assert service["spec"]["selector"].items() <= manifest("Deployment", JOB)["spec"]["template"]["metadata"]["labels"].items()


def test_prometheusrule_holds_the_alert_rules() -> None:
    """The PrometheusRule (for the Prometheus Operator) passes a schema derived from its CRD and holds exactly the
    groups of deploy/prometheus/alerts.yml, which promtool tests: copy them over after a change there."""
    done = run(tool("check-jsonschema"), "--schemafile", SCHEMAS / "prometheusrule.schema.json", KUBERNETES / "prometheusrule.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    rules = manifest("PrometheusRule", "model-migration")["spec"]["groups"]
    assert rules == yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]


def test_kustomization_lists_every_manifest() -> None:
    """kubectl apply -k applies all of deploy/kubernetes; the manifests name no namespace."""
    listed = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")
    assert [d["metadata"]["name"] for _, d in manifests() if "namespace" in d["metadata"]] == []


def test_worker_deployment_is_available_and_hardened() -> None:
    """Two or more replicas, a PodDisruptionBudget over them, resources, and a non-root, read-only container with a writable state dir."""
    deployment = manifest("Deployment", JOB)
    pod = deployment["spec"]["template"]["spec"]
    container = worker_container()
    assert deployment["spec"]["replicas"] >= 2
    pdb = manifest("PodDisruptionBudget", JOB)
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["minAvailable"] >= 1
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys() and "memory" in container["resources"]["limits"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    state_dir = manifest("ConfigMap", "model-migration")["data"]["MODEL_MIGRATION_STATE_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert state_dir in mounts and "emptyDir" in volumes[mounts[state_dir]], "the state dir needs a writable volume"
    assert "/tmp" in mounts


def test_probes_and_ports_match_the_configured_addresses() -> None:
    """Liveness (and startup) probe GET /live and readiness GET /ready on the port of MODEL_MIGRATION_HEALTH_ADDRESS;
    the metrics port is MODEL_MIGRATION_METRICS_ADDRESS's, and the Service points at it."""
    config = manifest("ConfigMap", "model-migration")["data"]
    health_port = int(config["MODEL_MIGRATION_HEALTH_ADDRESS"].rpartition(":")[2])
    metrics_port = int(config["MODEL_MIGRATION_METRICS_ADDRESS"].rpartition(":")[2])
    container = worker_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": health_port, "metrics": metrics_port}

    def target(probe: dict) -> tuple[str, int]:  # type: ignore[type-arg]
        port = probe["httpGet"]["port"]
        return probe["httpGet"]["path"], ports[port] if isinstance(port, str) else port

    assert target(container["livenessProbe"]) == ("/live", health_port)
    assert target(container["startupProbe"]) == ("/live", health_port)
    assert target(container["readinessProbe"]) == ("/ready", health_port)
    (service_port,) = manifest("Service", JOB)["spec"]["ports"]
    assert ports[service_port["targetPort"]] == metrics_port
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"EXPOSE {metrics_port} {health_port}" in dockerfile


def test_termination_grace_exceeds_the_drain_time() -> None:
    """The kubelet waits longer than MODEL_MIGRATION_GRACEFUL_SHUTDOWN before it kills a draining worker; compose too."""
    drain = float(manifest("ConfigMap", "model-migration")["data"]["MODEL_MIGRATION_GRACEFUL_SHUTDOWN"])
    grace = manifest("Deployment", JOB)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > drain + 10
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name in ("worker-1", "worker-2"):
        service = compose["services"][name]
        stop = int(re.fullmatch(r"(\d+)s", service["stop_grace_period"]).group(1))  # type: ignore[union-attr]
        assert stop > float(service["environment"]["MODEL_MIGRATION_GRACEFUL_SHUTDOWN"])


def test_every_setting_named_in_deploy_is_a_settings_field() -> None:
    """Each MODEL_MIGRATION_* name anywhere under deploy/ (manifests, compose, env examples, README, comments) is a Settings field."""
    fields = {f"MODEL_MIGRATION_{name.upper()}" for name in Settings.model_fields}
    named: dict[str, set[str]] = {}
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        for name in env_names(path.read_text(encoding="utf-8")) - fields:
            named.setdefault(name, set()).add(str(path.relative_to(DEPLOY)))
    assert named == {}
    config = manifest("ConfigMap", "model-migration")["data"]
    secret = manifest("Secret", "model-migration")["stringData"]
    for key in [*config, *secret]:
        assert key in fields or key.startswith("OTEL_"), key


def test_secrets_hold_placeholders_only() -> None:
    """No secret value is committed: the Secrets' values are placeholders, the env examples leave secrets empty."""
    for _, doc in manifests():
        if doc["kind"] == "Secret":
            assert "data" not in doc
            for key, value in doc["stringData"].items():
                assert "REPLACE-WITH-" in value, f"{doc['metadata']['name']}.{key}"
    for example in ("worker.env.example", "compose.env.example"):
        for line in (DEPLOY / example).read_text().splitlines():
            if re.match(r"[A-Z_]*(TOKEN|KEYS|KEY|PASSWORD)=", line):
                assert line.endswith("="), line
    ignored = (DEPLOY / ".gitignore").read_text().split()
    assert {".env", "worker.env"} <= set(ignored)


def test_compose_file_matches_the_compose_spec() -> None:
    """check-jsonschema's vendored compose-spec schema (no network) accepts deploy/compose.yaml, and refuses a misspelt key."""
    done = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", DEPLOY / "compose.yaml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_schema_refuses_a_typo(tmp_path: Path) -> None:
    """The compose check above is not vacuous."""
    bad = tmp_path / "compose.yaml"
    bad.write_text((DEPLOY / "compose.yaml").read_text().replace("stop_grace_period:", "stop_grace_periods:"))
    done = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", bad)
    assert done.returncode != 0 and "stop_grace_periods" in done.stdout


def test_compose_runs_the_pieces_and_prometheus_scrapes_both_workers() -> None:
    """Temporal on PostgreSQL (auto-setup), the UI with the codec endpoint, two workers of the Dockerfile, the codec
    server and Prometheus, every image pinned; Prometheus scrapes each worker's metrics address and loads the rules."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert services["temporal"]["image"].startswith("temporalio/auto-setup:1.")
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    assert services["temporal-ui"]["environment"]["TEMPORAL_CODEC_ENDPOINT"].endswith(":8081")
    assert services["codec-server"]["command"][0] == "codec-server"
    for name, service in services.items():
        if "build" in service:  # built from deploy/Dockerfile, whose base is pinned
            continue
        image = service["image"]
        assert re.search(r":[\w.-]*\d", image) and not image.endswith(":latest"), f"{name}: {image!r} is not pinned"
    workers = [n for n, s in services.items() if s.get("build", {}).get("dockerfile") == "deploy/Dockerfile" and "command" not in s
               and "entrypoint" not in s]
    assert workers == ["worker-1", "worker-2"]
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == JOB
    ports = {services[w]["environment"]["MODEL_MIGRATION_METRICS_ADDRESS"].rpartition(":")[2] for w in workers}
    assert job["static_configs"][0]["targets"] == [f"{w}:{p}" for w in workers for p in ports]
    mounted = {v.split(":")[1] for v in services["prometheus"]["volumes"] if v.startswith("./")}
    assert {"/etc/prometheus/prometheus.yml", "/etc/prometheus/alerts.yml"} <= mounted
    done = run(promtool(), "check", "config", PROMETHEUS / "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_registers_every_search_attribute() -> None:
    """The compose setup step and the README create exactly the search attributes the workflows use."""
    from workflows import attributes

    cli_type = {"KEYWORD_LIST": "KeywordList", "DATETIME": "Datetime"}
    wanted = {(key.name, cli_type.get(key.indexed_value_type.name, key.indexed_value_type.name.title())) for key in attributes.ALL}
    for text in ((DEPLOY / "compose.yaml").read_text(), (DEPLOY / "README.md").read_text()):
        created = set(re.findall(r"--name (\w+) --type (\w+)", text))
        assert wanted <= created, wanted - created


def test_promtool_checks_and_unit_tests_the_alert_rules() -> None:
    """promtool check rules accepts alerts.yml; promtool test rules shows each alert firing on its failure and quiet when healthy."""
    checked = run(promtool(), "check", "rules", PROMETHEUS / "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run(promtool(), "test", "rules", "alerts_test.yml", cwd=PROMETHEUS)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    quiet = {case["alertname"] for test in tests for case in test["alert_rule_test"] if not case["exp_alerts"]}
    names = {rule["alert"] for rule in alert_rules()}
    assert fired == names, names - fired
    assert quiet == names, names - quiet


def test_alerts_cover_the_issue_and_use_real_metrics() -> None:
    """Worker down, schedule-to-start, GitLab blocked > 1 h, overdue, activity failure rate; every metric is documented or the SDK's."""
    rules = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    assert "up{" in rules["ModelMigrationWorkerDown"]
    assert "schedule_to_start" in rules["ModelMigrationScheduleToStartHigh"]
    assert 'le="3600"' in rules["ModelMigrationGitLabBlocked"]
    assert 'kind="overdue"' in rules["ModelMigrationFeatureOverdue"]
    assert "temporal_activity_execution_failed_total" in rules["ModelMigrationActivityFailureRate"]
    used = {name for expr in rules.values() for name in METRIC.findall(expr)}
    assert used and [n for n in sorted(used) if not known(n)] == []
    assert all(f'job="{JOB}"' in expr for expr in rules.values())


def test_dashboard_queries_parse_and_use_real_metrics(tmp_path: Path) -> None:
    """Every dashboard query is valid PromQL (promtool parses it as a rule) over documented or SDK metrics,
    and the dashboard shows each family of the engine's metrics."""
    exprs = dashboard_exprs()
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": expr.replace("$__rate_interval", "5m")} for i, expr in enumerate(exprs)
    ]}]}
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    checked = run(promtool(), "check", "rules", tmp_path / "dashboard.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert [n for n in sorted(used) if not known(n)] == []
    engine = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in documented_metrics() if n.startswith("model_migration_")}
    shown = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in used}
    assert engine <= shown, engine - shown
    assert "$__rate_interval" in DASHBOARD.read_text() and '"uid": "${datasource}"' in DASHBOARD.read_text()


def test_dashboard_panels_are_laid_out_on_the_grid() -> None:
    """Unique panel ids, each panel within Grafana's 24 columns, none over another."""
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    boxes = [(p["title"], p["gridPos"]) for p in panels]
    assert all(0 <= g["x"] and g["x"] + g["w"] <= 24 for _, g in boxes)
    overlapping = [(a, b) for i, (a, g) in enumerate(boxes) for b, h in boxes[i + 1:]
                   if g["x"] < h["x"] + h["w"] and h["x"] < g["x"] + g["w"] and g["y"] < h["y"] + h["h"] and h["y"] < g["y"] + g["h"]]
    assert overlapping == []


def test_secret_template_has_every_secret_setting() -> None:
    """The Secret carries the GitLab token, the API key and the codec keys; the TLS Secret the CA, certificate and key
    the Deployment mounts where the ConfigMap's mTLS lines point."""
    secret = manifest("Secret", "model-migration")["stringData"]
    assert {"MODEL_MIGRATION_GITLAB_TOKEN", "MODEL_MIGRATION_TEMPORAL_API_KEY", "MODEL_MIGRATION_CODEC_KEYS"} <= secret.keys()
    tls = manifest("Secret", "model-migration-temporal-tls")["stringData"]
    assert set(tls) == {"ca.crt", "tls.crt", "tls.key"}
    (mount,) = [m for m in worker_container()["volumeMounts"] if m["name"] == "temporal-tls"]
    configmap = (KUBERNETES / "configmap.yaml").read_text()
    for name in tls:
        assert f"{mount['mountPath']}/{name}" in configmap
    assert all(d.get("kind") for d in documents(KUBERNETES / "secret.yaml"))
