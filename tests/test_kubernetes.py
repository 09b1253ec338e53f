"""deploy/kubernetes/ (SPEC 14, issue 12): every manifest is valid for a
named Kubernetes version (the `kubernetes-validate` package and the schemas
it ships; no cluster), the secret comes from the Secret and never from a
literal, the slaves point at the master's Service, and the Dockerfile is
multi-stage and builds what the manifests run. No docker daemon is needed:
the Dockerfile is parsed, not built."""
from __future__ import annotations

import copy
import re
import secrets
import shlex
from pathlib import Path

import pytest

from harness import REPO

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed "
    "(pip install -e '.[test]')")
yaml = pytest.importorskip("yaml", reason="PyYAML (kubernetes-validate's "
                           "dependency) is not installed")

DEPLOY = REPO / "deploy" / "kubernetes"
# successPolicy (slaves.yaml) is GA from 1.33 on.
K8S_VERSION = "1.33.0"
TEMPLATE = DEPLOY / "secret.template.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"


def manifests() -> list[Path]:
    return sorted(p for p in DEPLOY.glob("*.yaml") if p != TEMPLATE)


def load(path: Path, text: str | None = None) -> list[dict]:
    docs = list(yaml.safe_load_all(path.read_text() if text is None else text))
    return [d for d in docs if d is not None]


def rendered_secret(token: str) -> dict:
    """The template as its header says to render it (envsubst of MS_TOKEN)."""
    text = TEMPLATE.read_text()
    assert "${MS_TOKEN}" in text
    (doc,) = load(TEMPLATE, text.replace("${MS_TOKEN}", token))
    return doc


def resources() -> list[tuple[Path, dict]]:
    return [(p, d) for p in manifests() for d in load(p)]


def of_kind(kind: str) -> list[dict]:
    return [d for _, d in resources() if d["kind"] == kind]


def pod_specs() -> list[tuple[str, dict]]:
    """(resource name, pod spec) of every workload."""
    out = []
    for _, d in resources():
        if d["kind"] in ("Job", "Deployment", "StatefulSet"):
            out.append((d["metadata"]["name"], d["spec"]["template"]["spec"]))
    return out


def containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec["containers"]


def workload(component: str) -> dict:
    (found,) = [d for _, d in resources() if d["kind"] in ("Job", "Deployment")
                and d["metadata"]["labels"]["app.kubernetes.io/component"] == component]
    return found


def main_container(component: str) -> dict:
    (c,) = workload(component)["spec"]["template"]["spec"]["containers"]
    return c


def option(command: list[str], name: str) -> str:
    assert name in command, f"{name} not in {command}"
    return command[command.index(name) + 1]


# ------------------------------------------------------------ validity

def test_there_are_manifests_for_master_service_and_slaves():
    kinds = sorted(d["kind"] for _, d in resources())
    assert kinds == ["Job", "Job", "Service"], kinds
    assert workload("master") and workload("slave")


@pytest.mark.parametrize("path", manifests(), ids=lambda p: p.name)
def test_every_manifest_is_valid_for_the_named_kubernetes_version(path):
    for doc in load(path):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_secret_template_rendered_is_a_valid_secret():
    doc = rendered_secret(secrets.token_hex(32))
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert doc["kind"] == "Secret"


def test_the_validation_is_strict_enough_to_fail():
    """A misspelt field and a wrong type are refused, so the tests above
    can fail."""
    job = copy.deepcopy(workload("slave"))
    job["spec"]["template"]["spec"]["containers"][0]["comand"] = ["x"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    job = copy.deepcopy(workload("slave"))
    job["spec"]["parallelism"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, K8S_VERSION, strict=True)


# ------------------------------------------------------------ the secret

def test_every_ms_token_comes_from_the_secret():
    secret = rendered_secret("x")
    (key,) = secret["stringData"]
    name = secret["metadata"]["name"]
    seen = 0
    for owner, spec in pod_specs():
        for c in containers(spec):
            for env in c.get("env", []):
                if env["name"] != "MS_TOKEN":
                    continue
                seen += 1
                assert "value" not in env, f"{owner}/{c['name']}: literal MS_TOKEN"
                ref = env["valueFrom"]["secretKeyRef"]
                assert (ref["name"], ref["key"]) == (name, key), (owner, ref)
    # The master and the slaves both need it.
    assert seen == 2


def test_no_manifest_holds_a_secret_or_passes_one_on_a_command_line():
    """No env value, argument or Secret data in a manifest looks like a
    secret; the only Secret is the template, whose value is the
    placeholder that envsubst fills."""
    assert of_kind("Secret") == []
    assert load(TEMPLATE)[0]["stringData"] == {"token": "${MS_TOKEN}"}
    assert "data" not in load(TEMPLATE)[0]
    token_like = re.compile(r"^[0-9a-fA-F]{16,}$|^[A-Za-z0-9+/=_-]{32,}$")
    for owner, spec in pod_specs():
        for c in containers(spec):
            words = c.get("command", []) + c.get("args", [])
            assert not any(w.startswith(("--token", "--insecure")) for w in words), \
                (owner, words)
            assert not any(token_like.match(w) for w in words), (owner, words)
            for env in c.get("env", []):
                if "value" in env:
                    assert not token_like.match(env["value"]), (owner, env)
                    assert "TOKEN" not in env["name"].upper(), (owner, env)
            assert "envFrom" not in c, f"{owner}: envFrom hides what is set"


# ------------------------------------------------------------ wiring

def test_the_slaves_point_at_the_masters_service():
    (service,) = of_kind("Service")
    (port,) = service["spec"]["ports"]
    master_pod = workload("master")["spec"]["template"]
    slave_pod = workload("slave")["spec"]["template"]
    selector = service["spec"]["selector"]
    assert selector.items() <= master_pod["metadata"]["labels"].items()
    assert not selector.items() <= slave_pod["metadata"]["labels"].items()

    master = main_container("master")
    (cport,) = master["ports"]
    assert port["targetPort"] in (cport["name"], cport["containerPort"])
    listen = option(master["command"], "--listen")
    assert listen == f"0.0.0.0:{cport['containerPort']}"

    slave = main_container("slave")
    assert option(slave["command"], "--master") == \
        f"{service['metadata']['name']}:{port['port']}"
    # The init container waits for that very name.
    (init,) = slave_pod["spec"]["initContainers"]
    assert f"getent hosts {service['metadata']['name']}" in " ".join(init["command"])


def test_restart_policies_and_retries():
    """The master runs once (a rerun would print its output twice); the
    slaves are restarted when they fail, and the slaves' Job ends once one
    of them ended well (the master's goodbye reaches them all)."""
    master, slaves = workload("master"), workload("slave")
    assert master["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert master["spec"]["backoffLimit"] == 0
    assert slaves["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert slaves["spec"]["backoffLimit"] > 0
    assert slaves["spec"]["successPolicy"]["rules"] == [{"succeededCount": 1}]
    assert slaves["spec"]["parallelism"] == slaves["spec"]["completions"]


def cpus(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_every_container_has_resources_and_slaves_threads_match_their_cpus():
    for owner, spec in pod_specs():
        for c in containers(spec):
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= c["resources"][kind].keys(), \
                    (owner, c["name"], kind)
    slave = main_container("slave")
    threads = int(option(slave["command"], "--threads"))
    assert threads == cpus(slave["resources"]["limits"]["cpu"]) \
        == cpus(slave["resources"]["requests"]["cpu"])


# ------------------------------------------------------------ the image

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and continuation
    lines joined."""
    out, pending = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):       # also inside a continuation
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    assert not pending, "a continuation line ends the Dockerfile"
    return out


def stages(text: str) -> list[dict]:
    """Each FROM's stage: its base (ARGs before the first FROM substituted),
    its name, and its instructions."""
    args, result = {}, []
    for word, rest in dockerfile_instructions(text):
        if word == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            result.append({"base": base, "name": name, "steps": []})
        elif not result and word == "ARG":
            key, _, value = rest.partition("=")
            args[key] = value
        else:
            result[-1]["steps"].append((word, rest))
    return result


def test_the_dockerfile_is_multi_stage_with_a_small_final_image():
    build, final = stages(DOCKERFILE.read_text())
    assert build["name"] == "build" and final["name"] is None
    assert final["base"].endswith("-slim") and final["base"] != build["base"]
    build_runs = " ".join(r for w, r in build["steps"] if w == "RUN")
    final_runs = " ".join(r for w, r in final["steps"] if w == "RUN")
    for tool in ("python3", "gcc", "make", "libssl-dev"):
        assert tool in build_runs.split(), tool
        assert tool not in final_runs.split(), f"{tool} in the final image"
    # libcrypto.so.3, which every M/s executable links, is Debian's libssl3.
    assert "libssl3" in final_runs.split()
    # No sources and no build tree in the final image: only what is copied
    # from the build stage.
    assert [w for w, _ in final["steps"] if w in ("COPY", "ADD")] == ["COPY"]


def test_the_image_holds_what_the_manifests_run():
    build, final = stages(DOCKERFILE.read_text())
    (arg,) = [r for w, r in build["steps"] if w == "ARG"]
    key, _, program = arg.partition("=")
    assert key == "PROGRAM"
    assert (REPO / program).is_file(), program
    compile_run = next(r for w, r in build["steps"]
                       if w == "RUN" and "msc" in r)
    words = shlex.split(compile_run)
    prefix = words[words.index("-o") + 1]

    (copy_step,) = [r for w, r in final["steps"] if w == "COPY"]
    words = copy_step.split()
    assert words[0] == f"--from={build['name']}"
    *sources, dest = words[1:]
    assert sorted(sources) == [f"{prefix}-master", f"{prefix}-slave"]
    installed = {str(Path(dest) / Path(s).name) for s in sources}

    run = {main_container(c)["command"][0] for c in ("master", "slave")}
    assert run == installed, (run, installed)
    assert main_container("master")["command"][0].endswith("-master")
    assert main_container("slave")["command"][0].endswith("-slave")

    images = {c["image"] for _, spec in pod_specs() for c in containers(spec)}
    assert len(images) == 1, images
    (user,) = [r for w, r in final["steps"] if w == "USER"]
    uid, _, gid = user.partition(":")
    for _, spec in pod_specs():
        ctx = spec["securityContext"]
        assert (str(ctx["runAsUser"]), str(ctx["runAsGroup"])) == (uid, gid)


def test_the_dockerignore_keeps_host_builds_out_of_the_context():
    ignored = {line.strip() for line in
               (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "build"} <= ignored
