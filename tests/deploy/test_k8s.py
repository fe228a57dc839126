"""The Kubernetes manifests (deploy/k8s): rendered without a cluster (tests/deploy/kustomize.py),
every object valid against the Kubernetes API's schemas (kubernetes-validate, offline), and what
an administrator relies on: the pods run as the image's non-root user on a read-only root, their
probes ask the gateway's health on the port it serves it, replicas find their hub, each replica
serves behind its front (``huren front --run``, nginx) on loopback, the network policies let
through exactly the traffic meant, every Secret and HUREN_* variable used exists, and the
secrets' files are made by the commands docs/scaling.md gives."""

from __future__ import annotations

import argparse
import base64
import inspect
import json
import re
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import grpc
import kubernetes_validate
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.cli import environment
from gateway.cli.front import STOP_SECONDS
from gateway.cli.main import build_parser, configurable
from gateway.server.app import TlsFiles
from gateway.server.front import Address, Upstream
from gateway.server.probe import LIVENESS
from gateway.server.replica import TRUST_LIST_FILE, ReplicaServer
from gateway.storage.files import StateFiles
from tests.conftest import REPO
from tests.deploy.kustomize import Unsupported, load_documents, render
from tests.integration.cli import ENV, HUREN
from tests.integration.test_front import nginx

K8S = REPO / "deploy" / "k8s"
EXAMPLE = K8S / "overlays" / "example"
DOCS = REPO / "docs" / "scaling.md"
KUBERNETES_VERSIONS = ("1.30", "1.37")
"""The oldest release the manifests are meant for (native gRPC probes, autoscaling/v2, policy/v1
and fsGroupChangePolicy are all GA by then) and the newest whose schemas the package carries."""
VERIFIER_SERVICE = "huren.v1.VerifierService"
FRONT = ["huren", "front"]
"""How a container runs the front (the image's entry point is huren, its command a hub)."""

Object = dict[str, Any]


# ---------------------------------------------------------------- rendering the example


def section() -> str:
    text = DOCS.read_text("utf-8")
    start = text.index("## Deploying on Kubernetes")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def commands(prefix: str) -> list[list[str]]:
    """The documented shell commands starting with ``prefix`` (from the overlay's folder)."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", section(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith(prefix):
                found.append(shlex.split(line))
    return found


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> list[Object]:
    """The example overlay rendered with secret files made by the documented commands."""
    root = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, root)
    overlay = root / "overlays" / "example"
    made = commands("huren pki init")
    assert len(made) == 2, "the docs make the hub's and the verifiers' TLS files"
    for command in made:
        subprocess.run(
            [*HUREN, *command[1:]], cwd=overlay, env=ENV, check=True, capture_output=True
        )
    return render(overlay)


@pytest.fixture(scope="module")
def base() -> list[Object]:
    return render(K8S / "base")


def named(objects: list[Object], kind: str, name: str) -> Object:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def workloads(objects: list[Object]) -> list[Object]:
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]


def containers(workload: Object, *, init: bool = True) -> list[Object]:
    pod = workload["spec"]["template"]["spec"]
    return [*(pod.get("initContainers", []) if init else []), *pod["containers"]]


def env(container: Object) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def serving(workload: Object) -> Object:
    """The container that runs the image's own command (``huren serve``)."""
    (found,) = [c for c in containers(workload, init=False) if "command" not in c]
    return found


def front(workload: Object) -> Object:
    """The container that runs ``huren front``."""
    (found,) = [c for c in containers(workload, init=False) if c.get("command", [])[:2] == FRONT]
    return found


def front_options(container: Object) -> argparse.Namespace:
    """The front container's command, read by huren's own parser."""
    command = container["command"]
    assert command[:2] == FRONT
    return build_parser().parse_args(command[1:])


def prestop_seconds(container: Object) -> int:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    return int(command[1])


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text("utf-8")


def image_env() -> dict[str, str]:
    """The ENV the Dockerfile's final stage sets."""
    final = dockerfile().split("\nFROM ")[-1].replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in final.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                name, value = pair.split("=", 1)
                found[name] = value
    return found


# ---------------------------------------------------------------- schemas


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_for_kubernetes(example, base, version):
    for obj in [*example, *base]:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(map(str, e.path))
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {where}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            pytest.fail(e.message)


def test_the_example_holds_the_whole_deployment(example):
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in example)
    assert kinds == [
        ("Deployment", "huren-verifier"),
        ("HorizontalPodAutoscaler", "huren-verifier"),
        ("Namespace", "huren"),
        ("NetworkPolicy", "huren-default-deny"),
        ("NetworkPolicy", "huren-hub"),
        ("NetworkPolicy", "huren-verifier"),
        ("PodDisruptionBudget", "huren-verifier"),
        ("Secret", "huren-hub-tls"),
        ("Secret", "huren-verifier-tls"),
        ("Service", "huren-hub"),
        ("Service", "huren-registry"),
        ("Service", "huren-verifier"),
        ("StatefulSet", "huren-hub"),
    ]
    assert {o["metadata"].get("namespace") for o in example if o["kind"] != "Namespace"} == {
        "huren"
    }
    for workload in workloads(example):
        for container in containers(workload):
            assert container["image"] == "registry.example.org/huren:0.1.0"


# ---------------------------------------------------------------- containers


def test_every_container_runs_as_the_images_user_on_a_read_only_root(example):
    uid = int(re.search(r"useradd .*--uid (\d+)", dockerfile()).group(1))  # type: ignore[union-attr]
    namespace = named(example, "Namespace", "huren")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for workload in workloads(example):
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        for container in containers(workload):
            context = {**pod["securityContext"], **container["securityContext"]}
            what = f"{workload['metadata']['name']}/{container['name']}"
            assert context["runAsNonRoot"] is True, what
            assert context["runAsUser"] == uid, what
            assert context["readOnlyRootFilesystem"] is True, what
            assert context["allowPrivilegeEscalation"] is False, what
            assert context["capabilities"] == {"drop": ["ALL"]}, what
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, what


def test_every_path_a_container_writes_is_a_writable_volume(example):
    for workload in workloads(example):
        pod = workload["spec"]["template"]["spec"]
        claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        scratch = {v["name"] for v in pod["volumes"] if "emptyDir" in v} | claims
        for container in containers(workload):
            writable = [
                PurePosixPath(m["mountPath"])
                for m in container["volumeMounts"]
                if m["name"] in scratch and not m.get("readOnly", False)
            ]
            variables = env(container)
            wanted = [variables[k] for k in ("HUREN_STATE_DIR", "TMPDIR") if k in variables]
            if container.get("command", [])[:2] == FRONT:  # nginx's configuration, pid, temp
                wanted = [str(front_options(container).work_dir)]
            if container["name"] == "identity-secrets":  # writes the replica's state directory
                wanted = [re.search(r"install -d -m 700 (\S+)", container["command"][2]).group(1)]  # type: ignore[union-attr]
            assert wanted, container["name"]
            for path in map(PurePosixPath, wanted):
                mounts = [m for m in writable if path.is_relative_to(m)]
                assert mounts, f"{container['name']}: {path} is on the read-only root"
                # A state directory below the volume's root: the kubelet gives the root group
                # access (fsGroup), which huren refuses for a directory holding secrets.
                if variables.get("HUREN_STATE_DIR") == str(path):
                    assert all(path != m for m in mounts), path


def test_the_hub_keeps_its_registry_on_a_claim_and_never_runs_twice(example):
    hub = named(example, "StatefulSet", "huren-hub")
    assert hub["spec"]["replicas"] == 1
    (claim,) = hub["spec"]["volumeClaimTemplates"]
    (container,) = containers(hub)
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"]]
    state = PurePosixPath(env(container)["HUREN_STATE_DIR"])
    assert state.parent == PurePosixPath(mount["mountPath"])
    # Group bits are not added to the registry's files at each start (huren would refuse them).
    assert hub["spec"]["template"]["spec"]["securityContext"]["fsGroupChangePolicy"] == (
        "OnRootMismatch"
    )


def test_every_container_asks_for_resources(example):
    for workload in workloads(example):
        for container in containers(workload):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
            assert "memory" in resources["limits"], container["name"]
    verifier = named(example, "Deployment", "huren-verifier")
    # One process, one event loop: a pod's request is the core it can use.
    assert serving(verifier)["resources"]["requests"]["cpu"] == "1"


# ---------------------------------------------------------------- configuration


def serve_options(variables: dict[str, str]) -> argparse.Namespace:
    """``huren serve`` as the container starts it: the image's command, these variables."""
    parser = build_parser()
    for each in configurable(parser):
        environment.apply(each, variables)
    entrypoint = re.search(r'^ENTRYPOINT \["huren"\]$', dockerfile(), flags=re.M)
    assert entrypoint is not None
    command = re.search(r"^CMD (\[.*\])$", dockerfile(), flags=re.M)
    assert command is not None
    return parser.parse_args(json.loads(command.group(1)))


def test_every_huren_variable_is_one_huren_serve_reads(example):
    known = {
        environment.variable(action)
        for parser in configurable(build_parser())
        for action in environment.options(parser)
    }
    for workload in workloads(example):
        used = {k for k in env(serving(workload)) if k.startswith("HUREN_")}
        assert used, workload["metadata"]["name"]
        assert used <= known, used - known
        for container in containers(workload):  # huren front reads none
            if container is not serving(workload):
                assert not any(k.startswith("HUREN_") for k in env(container)), container["name"]
    assert {k for k in image_env() if k.startswith("HUREN_")} <= known


def test_one_image_serves_both_roles_by_variables_alone(example):
    hub = named(example, "StatefulSet", "huren-hub")
    verifier = named(example, "Deployment", "huren-verifier")
    assert containers(hub, init=False) == [serving(hub)]
    for workload in (hub, verifier):
        assert "args" not in serving(workload)
    hub_options = serve_options({**image_env(), **env(serving(hub))})
    assert hub_options.replica_of is None
    assert hub_options.init is True
    replica = serve_options({**image_env(), **env(serving(verifier))})
    assert replica.replica_of is not None
    assert replica.init is False  # huren refuses --init on a replica
    assert replica.trust_list_key is not None


def test_the_replicas_hub_is_a_service_that_reaches_the_hubs_verification_port(example):
    served = serving(named(example, "Deployment", "huren-verifier"))
    host, port = env(served)["HUREN_REPLICA_OF"].rsplit(":", 1)
    service = named(example, "Service", host)
    (service_port,) = [p for p in service["spec"]["ports"] if p["port"] == int(port)]
    hub = named(example, "StatefulSet", "huren-hub")
    labels = hub["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = containers(hub)
    (target,) = [p for p in container["ports"] if p["name"] == service_port["targetPort"]]
    assert target["containerPort"] == port_of(env(container)["HUREN_LISTEN"])


# ---------------------------------------------------------------- the verifiers' front

NGINX_SECONDS_PER_CALL = 140e-6
VERIFIER_CALLS_PER_SECOND = 1_600
"""Measured on one core (scripts/bench_latency.py --front): 1,320 Verify/s through the front
against 1,620 direct, so nginx costs about 140 us of CPU per call, at the rate one verifier
serves."""


def test_the_front_serves_tls_and_passes_calls_to_its_verifier_on_loopback(example):
    verifier = named(example, "Deployment", "huren-verifier")
    options = front_options(front(verifier))
    replica = serve_options({**image_env(), **env(serving(verifier))})
    assert options.run  # nginx run by `huren front` itself, which passes SIGTERM on
    upstream = Upstream.parse(options.upstream)
    listen = Address.parse(replica.listen, "HUREN_LISTEN")
    assert upstream.address == listen
    assert not upstream.tls  # plaintext inside the pod only
    assert replica.insecure
    assert listen.host == "127.0.0.1"  # nothing outside the pod reaches the verifier
    declared = [p["containerPort"] for c in containers(verifier) for p in c.get("ports", [])]
    assert listen.port not in declared
    # The hub is still dialled over TLS, checked against its CA (not --insecure's plaintext).
    assert replica.hub_ca is not None
    # The checkpoints reach the front, which serves TLS.
    assert not options.insecure
    served = Address.parse(options.listen, "--listen")
    assert served.host == "0.0.0.0"
    (service_port,) = named(example, "Service", "huren-verifier")["spec"]["ports"]
    targeted = [
        c["name"]
        for c in containers(verifier)
        for p in c.get("ports", [])
        if service_port["targetPort"] in (p["name"], p["containerPort"])
        and p["containerPort"] == served.port
    ]
    assert targeted == [front(verifier)["name"]]


def test_the_fronts_bound_is_the_verifiers_own(example):
    # Equal, the front's bound is the pod's whole queue: the verifier never refuses a call
    # itself (it counts each one for no longer than nginx does), and the excess never waits.
    verifier = named(example, "Deployment", "huren-verifier")
    options = front_options(front(verifier))
    replica = serve_options({**image_env(), **env(serving(verifier))})
    assert options.max_calls == replica.max_concurrent_rpcs
    assert options.max_message_bytes == replica.max_message_bytes
    assert options.max_streams >= replica.max_concurrent_streams  # a backstop only


def millicores(quantity: str) -> float:
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def mebibytes(quantity: str) -> float:
    assert quantity.endswith("Mi"), quantity
    return float(quantity[:-2])


def test_the_front_has_its_share_of_a_core_and_a_memory_limit(example):
    verifier = named(example, "Deployment", "huren-verifier")
    resources = front(verifier)["resources"]
    needed = NGINX_SECONDS_PER_CALL * VERIFIER_CALLS_PER_SECOND * 1000
    assert needed <= millicores(resources["requests"]["cpu"]) < 1000
    # As the verifier: no CPU limit, which would only throttle the pod's calls.
    assert "cpu" not in resources["limits"]
    assert "cpu" not in serving(verifier)["resources"]["limits"]
    assert 0 < mebibytes(resources["requests"]["memory"]) < mebibytes(resources["limits"]["memory"])


def test_the_verifier_outlives_its_fronts_drain_within_the_grace_period(example):
    verifier = named(example, "Deployment", "huren-verifier")
    grace = verifier["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # The front keeps taking calls while the endpoint's removal spreads, then drains for at
    # most STOP_SECONDS; the verifier serves them until then, and then stops in its own grace.
    drained = prestop_seconds(front(verifier)) + STOP_SECONDS
    assert prestop_seconds(front(verifier)) >= 5
    assert prestop_seconds(serving(verifier)) >= drained
    stopping = inspect.signature(ReplicaServer.stop).parameters["grace"].default
    assert grace >= prestop_seconds(serving(verifier)) + stopping + 1


def test_the_docs_give_the_fronts_command_ports_and_resources_as_deployed(example):
    verifier = named(example, "Deployment", "huren-verifier")
    text = section()
    assert f"`{' '.join(front(verifier)['command'])}`" in text
    assert f"`HUREN_LISTEN={env(serving(verifier))['HUREN_LISTEN']}`" in text
    resources = front(verifier)["resources"]
    cpu, memory = resources["requests"]["cpu"], resources["requests"]["memory"]
    limit = resources["limits"]["memory"]
    row = f"| front (each verifier pod) | request {cpu[:-1]} m CPU, {memory[:-2]} Mi; limit "
    assert f"{row}{limit[:-2]} Mi; no CPU limit |" in text


def test_nginx_accepts_the_fronts_configuration(example, tmp_path):
    verifier = named(example, "Deployment", "huren-verifier")
    command = front(verifier)["command"]
    options = front_options(front(verifier))
    tls = tmp_path / "tls"
    tls.mkdir()
    for key, value in named(example, "Secret", "huren-verifier-tls")["data"].items():
        (tls / key).write_bytes(base64.b64decode(value))
    # The container's arguments, the configuration printed rather than run, the Secret's files
    # here (huren front --run writes the same, listening with reuseport on the port it holds).
    arguments = [a for a in command[1:] if a != "--run"]
    arguments[arguments.index("--tls-dir") + 1] = str(tls)
    printed = subprocess.run(
        [*HUREN, *arguments, "--out", str(tmp_path / "nginx.conf")],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert printed.returncode == 0, printed.stderr
    configuration = (tmp_path / "nginx.conf").read_text("utf-8")
    assert f"server {Upstream.parse(options.upstream).address};" in configuration
    assert f"limit_conn huren_calls {options.max_calls};" in configuration
    assert f"ssl_certificate {tls / 'gateway.pem'};" in configuration
    checked = subprocess.run(
        [nginx(), "-t", "-p", f"{tmp_path}/", "-c", "nginx.conf", "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr


def test_only_the_verifiers_are_exposed(example):
    for service in (o for o in example if o["kind"] == "Service"):
        if service["metadata"]["name"] == "huren-verifier":
            assert service["spec"]["type"] == "LoadBalancer"  # the example's checkpoints
        else:
            assert service["spec"]["type"] == "ClusterIP", service["metadata"]["name"]


# ---------------------------------------------------------------- probes and metrics


def test_probes_ask_the_gateways_health_on_the_port_it_serves_it(example):
    for workload in workloads(example):
        pod_labels = workload["spec"]["template"]["metadata"]
        container = serving(workload)
        variables = env(container)
        health = port_of(variables["HUREN_HEALTH_LISTEN"])
        assert health in {p["containerPort"] for p in container["ports"]}
        assert health != port_of(variables["HUREN_LISTEN"])  # that one is TLS (or loopback)
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container[kind]["grpc"]
            assert probe["port"] == health, kind
            assert "mode" not in probe  # plaintext: TLS probes are alpha in 1.37
        assert container["livenessProbe"]["grpc"]["service"] == LIVENESS
        assert container["startupProbe"]["grpc"]["service"] == LIVENESS
        assert container["readinessProbe"]["grpc"]["service"] == VERIFIER_SERVICE
        annotations = pod_labels["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == port_of(variables["HUREN_METRICS_LISTEN"])


def test_the_front_is_probed_where_it_listens_and_the_pod_ready_with_the_verifier(example):
    verifier = named(example, "Deployment", "huren-verifier")
    container = front(verifier)
    listen = port_of(front_options(container).listen)
    # A check the kubelet runs itself (the front serves TLS only, and no health of its own).
    for kind in ("livenessProbe", "readinessProbe"):
        assert container[kind]["tcpSocket"]["port"] == listen, kind
    # Whether calls may come is the verifier's readiness: a pod is ready when both are.
    assert serving(verifier)["readinessProbe"]["grpc"]["service"] == VERIFIER_SERVICE


def test_the_autoscaler_and_the_budget_govern_the_verifiers(example):
    verifier = named(example, "Deployment", "huren-verifier")
    assert "replicas" not in verifier["spec"]  # the autoscaler's, not reset by each apply
    hpa = named(example, "HorizontalPodAutoscaler", "huren-verifier")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "huren-verifier")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    budget = named(example, "PodDisruptionBudget", "huren-verifier")
    labels = verifier["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]


# ---------------------------------------------------------------- secrets


def mounted_secret(workload: Object, container: Object, path: str) -> tuple[str, str]:
    """(Secret name, key) of the file at ``path`` in ``container``."""
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    for mount in container["volumeMounts"]:
        if PurePosixPath(path).parent == PurePosixPath(mount["mountPath"]):
            secret = volumes[mount["name"]]["secret"]
            name = PurePosixPath(path).name
            items = {
                i["path"]: i["key"] for i in secret.get("items", [{"path": name, "key": name}])
            }
            assert name in items, f"{path}: not among the items of its Secret volume"
            return secret["secretName"], items[name]
    raise AssertionError(f"{path} is on no mounted volume")


def files_read(container: Object) -> list[str]:
    """The files a container of huren reads (huren serve's from its variables, the front's from
    its command)."""
    if container.get("command", [])[:2] == FRONT:
        options = front_options(container)
        files = [options.tls_dir / "gateway.pem", options.tls_dir / "gateway.key"]
        return [str(f) for f in files]
    options = serve_options({**image_env(), **env(container)})
    files = []
    if not options.insecure:
        tls = TlsFiles(options.tls_dir)
        files += [tls.ca, tls.certificate, tls.key]
    files += [f for f in (options.trust_list_key, options.hub_ca) if f is not None]
    return [str(f) for f in files]


def replica_files(hub_state: str) -> set[str]:
    """The keys of huren-replica-files as the docs create it (with kubectl, from the hub's
    files after its first start): the files their loop copies out of ``hub_state`` into the
    folder ``--from-file`` names."""
    (create,) = [c for c in commands("kubectl") if "huren-replica-files" in c]
    assert create[create.index("create") :][:4] == [
        "create",
        "secret",
        "generic",
        "huren-replica-files",
    ]
    (folder,) = [c.split("=", 1)[1].rstrip("/") for c in create if c.startswith("--from-file=")]
    loop = re.search(r"for f in ([^;]+); do\n(.*?)\ndone", section(), flags=re.S)
    assert loop is not None
    body = loop.group(2)
    assert f"{hub_state}/$f" in body, "copied from the hub's state directory"
    assert f"> {folder}/$f" in body, "into the folder the Secret is made from"
    return set(loop.group(1).split())


def test_every_secret_file_a_container_reads_is_provided(example):
    generated = {o["metadata"]["name"]: set(o["data"]) for o in example if o["kind"] == "Secret"}
    hub_state = env(containers(named(example, "StatefulSet", "huren-hub"))[0])["HUREN_STATE_DIR"]
    provided = {**generated, "huren-replica-files": replica_files(hub_state)}
    assert provided["huren-replica-files"] == {"trustlist-key.jwk", "subject.key", "link.key"}
    state = StateFiles(Path("/"))
    for workload in workloads(example):
        pod = workload["spec"]["template"]["spec"]
        for volume in pod["volumes"]:
            if "secret" in volume:
                assert volume["secret"]["secretName"] in provided, volume
                assert "optional" not in volume["secret"]
        for container in containers(workload, init=False):
            files = files_read(container)
            assert files, container["name"]
            for path in files:
                secret, key = mounted_secret(workload, container, path)
                assert key in provided[secret], (secret, key)
        for container in pod.get("initContainers", []):
            copied = re.findall(r"(/etc/\S+)", container["command"][2])
            assert {PurePosixPath(p).name for p in copied} == {
                state.subject_key.name,
                state.link_key.name,
            }
            for path in copied:
                secret, key = mounted_secret(workload, container, path)
                assert key in provided[secret]
    assert TRUST_LIST_FILE not in provided["huren-replica-files"]  # the replica's own
    # The verifier, which reads the checkpoints' codes, holds no TLS key: its front serves TLS.
    verifier = named(example, "Deployment", "huren-verifier")
    volumes = {v["name"]: v for v in verifier["spec"]["template"]["spec"]["volumes"]}
    held = set()
    for mount in serving(verifier)["volumeMounts"]:
        secret = volumes[mount["name"]].get("secret")
        if secret is not None:
            items = secret.get("items")
            everything = provided[secret["secretName"]]
            held |= {i["key"] for i in items} if items else set(everything)
    assert "gateway.key" not in held
    assert "gateway.key" in {
        mounted_secret(verifier, front(verifier), path)[1] for path in files_read(front(verifier))
    }


def test_the_documented_commands_make_tls_files_the_replicas_trust(example):
    hub = named(example, "Secret", "huren-hub-tls")["data"]
    verifier = named(example, "Secret", "huren-verifier-tls")["data"]

    def certificate(data: dict[str, str], key: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate(base64.b64decode(data[key]))

    # The replica dials huren-hub: the hub's certificate names it and the replica's
    # hub-ca.pem signed it; the registry's Service name is there for the operators.
    names = certificate(hub, "gateway.pem").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    dns = names.value.get_values_for_type(x509.DNSName)
    assert {"huren-hub", "huren-registry"} <= set(dns)
    hub_certificate = certificate(hub, "gateway.pem")
    hub_certificate.verify_directly_issued_by(certificate(verifier, "hub-ca.pem"))
    served = certificate(verifier, "gateway.pem").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert "huren-verifier" in served.value.get_values_for_type(x509.DNSName)
    # No CA private key and no operator's key goes into the cluster.
    for data in (hub, verifier):
        assert set(data) <= {"ca.pem", "gateway.pem", "gateway.key", "hub-ca.pem"}


def test_no_key_material_can_be_committed():
    (overlay,) = load_documents(EXAMPLE / "kustomization.yaml")
    generated = [
        entry.rpartition("=")[2] for g in overlay["secretGenerator"] for entry in g["files"]
    ]
    generated += [f"secrets/replica/{name}" for name in ("subject.key", "link.key")]
    for relative in generated:
        ignored = subprocess.run(["git", "check-ignore", "-q", relative], cwd=EXAMPLE, check=False)
        assert ignored.returncode == 0, f"{relative} would be committed"
    # What git would take (tracked, or new and not ignored) holds no private key.
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "deploy"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "deploy/k8s/base/kustomization.yaml" in listed
    for name in listed:
        assert "PRIVATE KEY" not in (REPO / name).read_text("utf-8"), name
        assert not name.endswith((".key", ".pem", ".jwk")), name


# ---------------------------------------------------------------- network policies


@dataclass(frozen=True)
class Peer:
    """One end of a connection: a pod (namespace and labels) or an address outside."""

    namespace: str | None
    labels: dict[str, str]
    namespace_labels: dict[str, str]

    @staticmethod
    def pod(namespace: str, labels: dict[str, str]) -> Peer:
        return Peer(namespace, labels, {"kubernetes.io/metadata.name": namespace})


OUTSIDE = Peer(None, {}, {})


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "the evaluator knows matchLabels only"
    wanted: dict[str, str] = selector.get("matchLabels", {})
    return wanted.items() <= labels.items()


def peer_matches(rule_peer: dict[str, Any], peer: Peer, policy_namespace: str) -> bool:
    assert "ipBlock" not in rule_peer, "the evaluator knows pod and namespace selectors only"
    if peer.namespace is None:
        return False
    if "namespaceSelector" in rule_peer:
        if not selects(rule_peer["namespaceSelector"], peer.namespace_labels):
            return False
    elif peer.namespace != policy_namespace:
        return False
    return selects(rule_peer.get("podSelector", {}), peer.labels)


def allowed(
    policies: list[Object], pod: Peer, direction: str, other: Peer, port: int, protocol: str
) -> bool:
    """Whether the policies let ``pod`` receive from (Ingress) or send to (Egress) ``other``."""
    chosen = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and selects(p["spec"]["podSelector"], pod.labels)
        and direction in p["spec"]["policyTypes"]
    ]
    if not chosen:
        return True
    key, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in chosen:
        for rule in policy["spec"].get(key, []):
            ports = rule.get("ports")
            if ports is not None and not any(
                p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports
            ):
                continue
            if "from" not in rule and "to" not in rule:
                return True
            if any(peer_matches(r, other, policy["metadata"]["namespace"]) for r in rule[peers]):
                return True
    return False


def connects(
    policies: list[Object], source: Peer, destination: Peer, port: int, protocol: str = "TCP"
) -> bool:
    sent = source is OUTSIDE or allowed(policies, source, "Egress", destination, port, protocol)
    received = destination is OUTSIDE or allowed(
        policies, destination, "Ingress", source, port, protocol
    )
    return sent and received


def test_the_network_policies_let_through_exactly_the_traffic_meant(example):
    policies = [o for o in example if o["kind"] == "NetworkPolicy"]
    pods = {
        w["metadata"]["name"]: Peer.pod("huren", w["spec"]["template"]["metadata"]["labels"])
        for w in workloads(example)
    }
    hub, verifier = pods["huren-hub"], pods["huren-verifier"]
    hub_env = env(containers(named(example, "StatefulSet", "huren-hub"))[0])
    verify, registry = port_of(hub_env["HUREN_LISTEN"]), port_of(hub_env["HUREN_REGISTRY_LISTEN"])
    metrics = port_of(hub_env["HUREN_METRICS_LISTEN"])
    operator = Peer.pod("huren-operators", {"app": "toolbox"})
    prometheus = Peer.pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
    checkpoint = Peer.pod("checkpoints", {"app": "scanner"})
    dns = Peer.pod("kube-system", {"k8s-app": "kube-dns"})
    stranger = Peer.pod("huren", {"app": "debug"})

    # Replicas reach the hub's trust list, and only that.
    assert connects(policies, verifier, hub, verify)
    assert not connects(policies, verifier, hub, registry)
    assert not connects(policies, verifier, checkpoint, 443)
    assert not connects(policies, verifier, OUTSIDE, 443)
    assert connects(policies, verifier, dns, 53, "UDP")
    # Checkpoints reach the replicas' front, never the verifier behind it, nor the hub.
    replicas = named(example, "Deployment", "huren-verifier")
    served = port_of(front_options(front(replicas)).listen)
    loopback = port_of(env(serving(replicas))["HUREN_LISTEN"])
    assert connects(policies, checkpoint, verifier, served)
    assert connects(policies, OUTSIDE, verifier, served)
    assert not connects(policies, checkpoint, verifier, loopback)
    assert not connects(policies, OUTSIDE, verifier, loopback)
    assert not connects(policies, checkpoint, hub, verify)
    assert not connects(policies, checkpoint, hub, registry)
    assert not connects(policies, stranger, hub, verify)
    # Registry changes only from the operators' namespace.
    assert connects(policies, operator, hub, registry)
    assert not connects(policies, operator, hub, verify)
    assert not connects(policies, stranger, hub, registry)
    # Metrics only to the monitoring namespace's Prometheus.
    for pod in (hub, verifier):
        assert connects(policies, prometheus, pod, metrics)
        assert not connects(policies, checkpoint, pod, metrics)
        assert not connects(policies, Peer.pod("monitoring", {"app": "other"}), pod, metrics)
    # The hub calls no one (but the DNS).
    assert not connects(policies, hub, OUTSIDE, 443)
    assert not connects(policies, hub, verifier, verify)
    # Every policy selects pods that exist.
    for policy in policies:
        assert any(selects(policy["spec"]["podSelector"], p.labels) for p in pods.values())


# ---------------------------------------------------------------- the renderer


@pytest.mark.parametrize(
    ("kustomization", "files", "refused"),
    [
        ("helmCharts: []\n", {}, "helmCharts"),
        ("resources: [https://example.org/x.yaml]\n", {}, "remote"),
        (
            "secretGenerator: [{name: s, files: [a]}]\n",
            {"a": "x"},
            "disableNameSuffixHash",
        ),
        (
            "patches: [{path: p.yaml, target: {kind: Service, name: s}}]\nresources: [s.yaml]\n",
            {
                "p.yaml": "spec: {type: LoadBalancer}\n",
                "s.yaml": "{kind: Service, metadata: {name: s}, spec: {}}\n",
            },
            "only JSON patches",
        ),
        (
            "resources: [../outside.yaml]\n",
            {"../outside.yaml": "{kind: Service, metadata: {name: s}}\n"},
            "inside",
        ),
    ],
)
def test_the_renderer_refuses_what_it_does_not_implement(tmp_path, kustomization, files, refused):
    folder = tmp_path / "k"
    folder.mkdir()
    (folder / "kustomization.yaml").write_text(kustomization)
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(Unsupported, match=refused):
        render(folder)


def test_the_renderer_applies_json_patches_and_images(tmp_path):
    (tmp_path / "kustomization.yaml").write_text(
        "namespace: n\nresources: [d.yaml]\nimages: [{name: app, newTag: '2'}]\n"
        "patches: [{path: p.yaml, target: {kind: Deployment, name: d}}]\n"
    )
    (tmp_path / "d.yaml").write_text(
        "kind: Deployment\nmetadata: {name: d}\n"
        "spec: {template: {spec: {containers: [{name: c, image: 'app:1'}], volumes: []}}}\n"
    )
    (tmp_path / "p.yaml").write_text(
        "- {op: add, path: /spec/replicas, value: 3}\n"
        "- {op: add, path: /spec/template/spec/volumes/-, value: {name: v}}\n"
    )
    (rendered,) = render(tmp_path)
    assert rendered["metadata"]["namespace"] == "n"
    assert rendered["spec"]["replicas"] == 3
    assert rendered["spec"]["template"]["spec"]["volumes"] == [{"name": "v"}]
    assert rendered["spec"]["template"]["spec"]["containers"][0]["image"] == "app:2"
    assert load_documents(tmp_path / "d.yaml")[0]["spec"].get("replicas") is None


# ---------------------------------------------------------------- the pods, as processes here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Pod:
    """A pod of the rendered manifests run as processes on this machine: its volumes are
    folders under ``root`` (Secret files 0440, writable volumes with the group bits and set-gid
    the kubelet gives them for fsGroup), its absolute paths moved there, its ports on loopback."""

    def __init__(self, workload: Object, secrets: dict[str, dict[str, bytes]], root: Path) -> None:
        self.workload = workload
        self.root = root
        self.ports: dict[int, int] = {}
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in containers(workload):
            for mount in container["volumeMounts"]:
                folder = self.path(mount["mountPath"])
                volume = volumes.get(mount["name"], {})
                if "secret" in volume:
                    folder.mkdir(parents=True, exist_ok=True)
                    content = secrets[volume["secret"]["secretName"]]
                    items = volume["secret"].get("items", [{"key": k, "path": k} for k in content])
                    for item in items:
                        (folder / item["path"]).write_bytes(content[item["key"]])
                        (folder / item["path"]).chmod(0o440)
                elif not folder.exists():
                    folder.mkdir(parents=True)
                    folder.chmod(0o2770)

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def moved(self, text: str) -> str:
        """``text`` with the pod's absolute paths under ``root``, its ports (any address, or
        loopback, with or without a grpc:// scheme) on free ports of loopback."""
        text = re.sub(r"(?<![\w.-])(/(?:etc|var|tmp)\b)", lambda m: str(self.root) + m[1], text)

        def port(match: re.Match[str]) -> str:
            local = self.ports.setdefault(int(match[2]), free_port())
            return f"{match[1]}127.0.0.1:{local}"

        return re.sub(r"^((?:grpcs?://)?)(?:0\.0\.0\.0|127\.0\.0\.1):(\d+)$", port, text)

    def init(self) -> None:
        for container in self.workload["spec"]["template"]["spec"].get("initContainers", []):
            command = [self.moved(part) for part in container["command"]]
            subprocess.run(command, check=True, timeout=30)

    def start(self, container: Object, replace: dict[str, str]) -> subprocess.Popen[str]:
        """``container`` (its command, or the image's, under the image's ``huren``)."""
        variables = {k: self.moved(v) for k, v in {**image_env(), **env(container)}.items()}
        variables.update(replace)
        if "command" in container:
            assert container["command"][0] == "huren"
            command = [self.moved(part) for part in container["command"][1:]]
        else:
            command = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile(), flags=re.M)[1])  # type: ignore[index]
        return subprocess.Popen(
            [*HUREN, *command],
            env={**ENV, **variables},
            # The front's first line says when it listens (a SIGTERM before is a failed start).
            stdout=subprocess.PIPE if "command" in container else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )


def wait_serving(
    address: str,
    service: str,
    process: subprocess.Popen[str],
    tls: tuple[bytes, str] | None = None,
) -> None:
    """Until the health service at ``address`` answers SERVING for ``service``: in plaintext,
    or with ``tls`` = (CA certificate, the name the server's certificate holds)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"exited {process.returncode}: {process.stderr.read()}")  # type: ignore[union-attr]
        if tls is None:
            opened = grpc.insecure_channel(address)
        else:
            credentials = grpc.ssl_channel_credentials(root_certificates=tls[0])
            name = [("grpc.ssl_target_name_override", tls[1])]
            opened = grpc.secure_channel(address, credentials, options=name)
        with opened as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=2
                )
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
        time.sleep(0.2)
    pytest.fail(f"{address} not SERVING {service} within 60 s")


@pytest.mark.slow
def test_the_pods_as_described_serve_a_hub_and_a_replica_that_follows_it(example, tmp_path):
    secrets = {
        o["metadata"]["name"]: {k: base64.b64decode(v) for k, v in o["data"].items()}
        for o in example
        if o["kind"] == "Secret"
    }
    hub = Pod(named(example, "StatefulSet", "huren-hub"), secrets, tmp_path / "hub")
    (hub_container,) = containers(hub.workload)
    hub_env = env(hub_container)
    with hub.start(hub_container, {}) as hub_process:
        try:
            health = port_of(hub_env["HUREN_HEALTH_LISTEN"])
            wait_serving(f"127.0.0.1:{hub.ports[health]}", VERIFIER_SERVICE, hub_process)
            # The docs' loop: the replica's files out of the hub's state directory.
            state = hub.path(hub_env["HUREN_STATE_DIR"])
            secrets["huren-replica-files"] = {
                name: (state / name).read_bytes()
                for name in replica_files(hub_env["HUREN_STATE_DIR"])
            }
            verifier = Pod(named(example, "Deployment", "huren-verifier"), secrets, tmp_path / "v")
            verifier.init()
            served = serving(verifier.workload)
            hub_port = hub.ports[port_of(env(served)["HUREN_REPLICA_OF"])]
            # huren-hub is the hub here (its certificate also names 127.0.0.1).
            with verifier.start(served, {"HUREN_REPLICA_OF": f"127.0.0.1:{hub_port}"}) as replica:
                try:
                    health = port_of(env(served)["HUREN_HEALTH_LISTEN"])
                    address = f"127.0.0.1:{verifier.ports[health]}"
                    wait_serving(address, LIVENESS, replica)
                    wait_serving(address, VERIFIER_SERVICE, replica)  # it holds the hub's list
                    # Saved once it is served (docs/scaling.md, how a list travels, step 6).
                    kept = verifier.path(env(served)["HUREN_STATE_DIR"]) / TRUST_LIST_FILE
                    saved = time.monotonic() + 10
                    while not kept.is_file() and time.monotonic() < saved:
                        time.sleep(0.05)
                    assert kept.is_file()
                    # The checkpoints' way in: TLS to the front, which passes calls on.
                    nginx()  # the machine's, which huren front finds itself
                    sidecar = front(verifier.workload)
                    listen = port_of(front_options(sidecar).listen)
                    with verifier.start(sidecar, {}) as fronted:
                        try:
                            started = fronted.stdout.readline()  # type: ignore[union-attr]
                            assert started.startswith("huren front listening on "), started
                            trusted = secrets["huren-verifier-tls"]["ca.pem"]
                            wait_serving(
                                f"127.0.0.1:{verifier.ports[listen]}",
                                VERIFIER_SERVICE,
                                fronted,
                                (trusted, "huren-verifier"),
                            )
                        finally:
                            fronted.terminate()  # SIGTERM: nginx's graceful stop
                        assert fronted.wait(STOP_SECONDS + 10) == 0, fronted.stderr.read()  # type: ignore[union-attr]
                finally:
                    replica.terminate()
        finally:
            hub_process.terminate()
