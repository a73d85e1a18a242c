#!/usr/bin/env python3
"""Cross-checks the delivery files against each other and the repository.

Run by scripts/check-deploy.sh. Each failed check prints one line; the exit
status is 1 if any failed. With --merged-compose FILE it only writes the
devcontainer's view of the compose files (compose.yaml overlaid with
.devcontainer/compose.yaml) to FILE, for schema validation.
"""

import json
import pathlib
import re
import sys
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
FAILURES: list[str] = []


def check(condition: bool, message: str) -> None:
    if not condition:
        FAILURES.append(message)


def load_jsonc(path: pathlib.Path):
    """JSON with // comments, as VS Code reads launch.json and tasks.json."""
    text = re.sub(r'^\s*//.*$', "", path.read_text(), flags=re.MULTILINE)
    return json.loads(text)


def merge(base, override):
    """Compose's merge for what these files use: mappings merge key by key,
    sequences append, scalars are replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list):
        return base + [item for item in override if item not in base]
    return override


def merged_compose() -> dict:
    base = yaml.safe_load((ROOT / "compose.yaml").read_text())
    override = yaml.safe_load((ROOT / ".devcontainer/compose.yaml").read_text())
    return merge(base, override)


def pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
    return bool(tag) and tag != "latest" and not tag.startswith("$")


def host_of(endpoint: str) -> str:
    endpoint = re.sub(r"^[a-z]+://", "", endpoint)
    return endpoint.split("/")[0].rsplit(":", 1)[0]


# --------------------------------------------------------------- Dockerfile --
def check_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = re.sub(r"\\\n", " ", text).splitlines()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, flags=re.MULTILINE))
    stages: dict[str, list[str]] = {}
    current = None
    for line in lines:
        line = line.strip()
        if line.startswith("FROM "):
            parts = line.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), parts[1])
            current = parts[3] if len(parts) > 3 and parts[2].upper() == "AS" else image
            if image not in stages:
                check(pinned(image), f"Dockerfile: FROM {image} is not pinned to a tag")
            stages[current] = []
        elif current:
            stages[current].append(line)

    for target in ("toolchain", "deps", "build", "dev", "debug", "runtime"):
        check(target in stages, f"Dockerfile: no stage named {target}")
    check(list(stages)[-1] == "runtime", "Dockerfile: the last stage (the default target) must be runtime")

    # COPY sources from the build context exist and are not .dockerignore'd.
    ignored = [
        p.strip().rstrip("/")
        for p in (ROOT / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    for line in lines:
        match = re.match(r"\s*COPY\s+(?!--from)(.*)", line)
        if not match:
            continue
        sources = [s for s in match.group(1).split()[:-1] if not s.startswith("--")]
        for source in sources:
            if source == ".":
                continue
            check((ROOT / source).exists(), f"Dockerfile: COPY source {source} does not exist")
            top = source.rstrip("/").split("/")[0]
            check(top not in ignored and source.rstrip("/") not in ignored,
                  f"Dockerfile: COPY source {source} is excluded by .dockerignore")
            if source.startswith("docker/"):
                check((ROOT / source).stat().st_mode & 0o111 != 0 or source.endswith(".sh"),
                      f"{source} must be executable")

    # Every workspace member's manifest reaches the dependency layer.
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]
    deps = " ".join(stages.get("deps", []))
    for member in workspace["members"]:
        check(f"COPY {member}/Cargo.toml {member}/" in deps,
              f"Dockerfile: the deps stage does not copy {member}/Cargo.toml (a new workspace member?)")
        # A crate of integration tests alone (tests/) has its stub under tests/.
        check(f"{member}/src" in deps or f"{member}/tests" in deps,
              f"Dockerfile: the deps stage makes no stub sources for {member}")

    # The dependency layer runs exactly `make host` and `make rules`.
    makefile = (ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+)\s*:?=\s*(.+)$", makefile, flags=re.MULTILINE))
    variables["CARGO"] = "cargo"

    def recipe(target: str) -> list[str]:
        block = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE)
        commands = []
        for command in (block.group(1).splitlines() if block else []):
            command = command.strip().lstrip("@")
            command = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)).strip(), command)
            if command.startswith("cargo "):
                commands.append(command)
        return commands

    for target in ("host", "rules"):
        commands = recipe(target)
        check(bool(commands), f"Makefile: no cargo command in the `{target}` recipe")
        for command in commands:
            check(command in deps, f"Dockerfile: the deps stage does not run `{command}` (make {target})")
    check("RUN make build" in stages.get("build", []), "Dockerfile: the build stage must RUN make build")

    # The rules the runtime image ships are where BEAKER_RULES says.
    for target in ("runtime", "debug"):
        body = "\n".join(stages.get(target, []))
        rules = re.search(r"BEAKER_RULES=(\S+)", body)
        check(bool(rules) and rules.group(1) in body.replace(f"BEAKER_RULES={rules.group(1)}", ""),
              f"Dockerfile: {target}: BEAKER_RULES does not point at the copied rules component")
        check("HEALTHCHECK" in body, f"Dockerfile: {target} has no HEALTHCHECK")
        user = re.findall(r"^USER (\S+)", body, flags=re.MULTILINE)
        check(bool(user) and re.fullmatch(r"[1-9]\d*(:\d+)?", user[-1]) is not None,
              f"Dockerfile: {target} must end as a numeric non-root USER")


# ------------------------------------------------------------------ compose --
def check_compose() -> dict:
    compose = merged_compose()
    services = compose["services"]
    aliases = {
        alias
        for service in services.values()
        for network in (service.get("networks") or {}).values()
        for alias in ((network or {}).get("aliases") or [])
    }
    names = set(services) | aliases

    for name, service in services.items():
        if "image" in service and "build" not in service:
            check(pinned(service["image"]), f"compose: {name}: image {service['image']} is not pinned")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("."):
                check((ROOT / source).exists(), f"compose: {name}: mounted path {source} does not exist")
        for dependency, spec in (service.get("depends_on") or {}).items():
            check(dependency in services, f"compose: {name} depends on unknown service {dependency}")
            condition = (spec or {}).get("condition")
            if condition == "service_healthy":
                target = services.get(dependency, {})
                check("healthcheck" in target or "build" in target,
                      f"compose: {name} waits for {dependency} to be healthy, but it has no health check")
        mode = service.get("network_mode", "")
        if mode.startswith("service:"):
            check(mode[len("service:"):] in services, f"compose: {name}: network_mode names an unknown service")
            check("ports" not in service and "networks" not in service,
                  f"compose: {name} shares a network namespace and cannot publish ports or join networks")

    # Configuration files name services that exist.
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    for job in prometheus["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host = host_of(target)
                check(host in names or host == "localhost",
                      f"deploy/prometheus/prometheus.yml: job {job['job_name']} scrapes unknown host {host}")
    # Every rule file the configuration loads exists beside it and is
    # mounted beside it in the container.
    mounted = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"].get("volumes", [])
               if isinstance(v, str) and v.startswith("./")}
    for rule_file in prometheus.get("rule_files", []):
        check((ROOT / "deploy/prometheus" / rule_file).exists(),
              f"deploy/prometheus/prometheus.yml loads {rule_file}, which is not in deploy/prometheus/")
        check(f"/etc/prometheus/{rule_file}" in mounted,
              f"compose: prometheus does not mount {rule_file} at /etc/prometheus/{rule_file}")
    collector = yaml.safe_load((ROOT / "deploy/otel-collector.yaml").read_text())
    for name, exporter in collector["exporters"].items():
        endpoint = (exporter or {}).get("endpoint")
        if endpoint:
            check(host_of(endpoint) in names, f"deploy/otel-collector.yaml: exporter {name} sends to an unknown host")
    for pipeline, spec in collector["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in spec.get(kind, []):
                check(component in (collector.get(kind) or {}),
                      f"deploy/otel-collector.yaml: pipeline {pipeline} uses undefined {kind[:-1]} {component}")
    datasources = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/datasources.yaml").read_text())["datasources"]
    for source in datasources:
        check(host_of(source["url"]) in names, f"grafana datasource {source['name']} points at an unknown host")
    providers = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/dashboards.yaml").read_text())["providers"]
    grafana_targets = [v.split(":")[1] for v in services["grafana"]["volumes"]]
    uids = {source["uid"] for source in datasources}
    for provider in providers:
        check(provider["options"]["path"] in grafana_targets,
              f"grafana dashboards provider reads {provider['options']['path']}, which is not mounted")
    for dashboard_path in (ROOT / "deploy/grafana/dashboards").glob("*.json"):
        dashboard = json.loads(dashboard_path.read_text())
        check(bool(dashboard.get("uid")) and bool(dashboard.get("title")), f"{dashboard_path.name}: uid and title")
        for panel in dashboard.get("panels", []):
            uid = (panel.get("datasource") or {}).get("uid")
            check(uid is None or uid in uids, f"{dashboard_path.name}: panel {panel.get('title')} uses unknown data source {uid}")
    return compose


# ------------------------------------------------------------- devcontainer --
def check_devcontainer(compose: dict) -> None:
    config = json.loads((ROOT / ".devcontainer/devcontainer.json").read_text())
    services = compose["services"]
    for key in ("dockerComposeFile", "service", "workspaceFolder"):
        check(key in config, f"devcontainer.json: {key} is required with Docker Compose")
    for file in config["dockerComposeFile"]:
        check((ROOT / ".devcontainer" / file).exists(), f"devcontainer.json: {file} does not exist")
    check(config["service"] in services, "devcontainer.json: its service is not in the compose files")
    for name in config.get("runServices", []):
        check(name in services, f"devcontainer.json: runServices names unknown service {name}")
    dev = services.get(config["service"], {})
    mounted = [v.split(":")[1] for v in dev.get("volumes", []) if isinstance(v, str)]
    check(config["workspaceFolder"] in mounted, "devcontainer.json: workspaceFolder is not where the repository is mounted")
    check(config.get("shutdownAction", "stopCompose") in ("none", "stopCompose"), "devcontainer.json: shutdownAction")
    for key in ("initializeCommand", "onCreateCommand", "updateContentCommand", "postCreateCommand",
                "postStartCommand", "postAttachCommand"):
        command = config.get(key)
        if isinstance(command, str) and command.startswith(".devcontainer/"):
            script = ROOT / command.split()[0]
            check(script.exists() and script.stat().st_mode & 0o111 != 0,
                  f"devcontainer.json: {key} runs {command}, which is missing or not executable")
    for port in config.get("forwardPorts", []):
        if isinstance(port, str):
            match = re.fullmatch(r"([a-z0-9-]+):(\d{1,5})", port)
            check(match is not None and match.group(1) in services,
                  f"devcontainer.json: forwardPorts {port} must be SERVICE:PORT of a compose service")
        else:
            check(0 < port < 65536, f"devcontainer.json: bad port {port}")
    for key in config.get("portsAttributes", {}):
        check(re.fullmatch(r"\d+(-\d+)?", key) is not None, f"devcontainer.json: portsAttributes key {key}")
    memory = config.get("hostRequirements", {}).get("memory", "1gb")
    check(re.fullmatch(r"\d+([tgmk]b)?", memory) is not None, "devcontainer.json: hostRequirements.memory")
    extensions = config["customizations"]["vscode"]["extensions"]
    for extension in ("rust-lang.rust-analyzer", "vadimcn.vscode-lldb", "bierner.markdown-mermaid"):
        check(extension in extensions, f"devcontainer.json: extension {extension} is missing")

    tasks = {task["label"] for task in load_jsonc(ROOT / ".vscode/tasks.json")["tasks"]}
    for launch in load_jsonc(ROOT / ".vscode/launch.json")["configurations"]:
        task = launch.get("preLaunchTask")
        check(task is None or task in tasks, f".vscode/launch.json: preLaunchTask {task} is not in tasks.json")


# ------------------------------------------------------------------ workflow --
def check_workflow(compose: dict) -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    text = (ROOT / ".github/workflows/ci.yml").read_text()
    # The test job runs exactly the make commands of .ci/run, in its order.
    def make_commands(script: str) -> list[str]:
        return [line.strip() for line in script.splitlines() if line.strip().startswith("make ")]

    job = [c for step in workflow["jobs"]["test"]["steps"] for c in make_commands(step.get("run", ""))]
    ci_run = make_commands((ROOT / ".ci/run").read_text())
    check("make lint" in ci_run and "make test" in ci_run, ".ci/run must run make lint and make test")
    check(job == ci_run, f"ci.yml's test job runs {job}, .ci/run runs {ci_run}: they must be the same")
    for service in ("postgres", "nats"):
        image = compose["services"][service]["image"]
        check(image in text, f"ci.yml does not use compose.yaml's {service} image {image}")


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--merged-compose":
        pathlib.Path(sys.argv[2]).write_text(yaml.safe_dump(merged_compose(), sort_keys=False))
        return 0
    check_dockerfile()
    compose = check_compose()
    check_devcontainer(compose)
    check_workflow(compose)
    for failure in FAILURES:
        print(f"check-deploy: {failure}", file=sys.stderr)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
