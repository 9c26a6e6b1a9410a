"""Every panel of the Grafana dashboard, evaluated by the real Prometheus
scraping the real processes under load, and checked against what the test
did.

Starts pingpong, the log-output writer (one entry a second) and reader (the
release binaries, in a temporary directory), and Debian's Prometheus
scraping them every second with the alert rules loaded (the job and
container labels as the PodMonitors make them); pings pingpong at a steady
rate from a few threads and reads the log meanwhile; then evaluates every
panel's query (`/api/v1/query`) and checks that each returns data, that
pings per second is near the rate the clients were answered at, that the
count is what `/pings` answers, that the writer's entries per minute are
near 60, and that the rules are loaded with no alert firing. With --plot
FILE it also draws every panel from range queries over the run
(`/api/v1/query_range`) as an SVG: what the dashboard shows, where Grafana
cannot run.

Usage: python monitoring/test-dashboard.py BIN_DIR [--plot FILE]   (standard library only;
       needs prometheus on PATH or in PROMETHEUS)
Ends with `N passed, M failed`; exits 1 if any check failed.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.argv[1])
PLOT = sys.argv[sys.argv.index("--plot") + 1] if "--plot" in sys.argv else None
PINGPONG, READER, WRITER, PROM = 13901, 13902, 13903, 13904
RATE = 150  # pings a second, all threads together
# Grafana replaces $__rate_interval with four scrape intervals at least (one
# minute with the PodMonitors' 15 s); this Prometheus scrapes every second.
RATE_INTERVAL = "10s"
LOAD_SECONDS = 25

work = Path(tempfile.mkdtemp(prefix="dashboard-"))
procs = []
results = []


def check(what, ok, detail=""):
    results.append(ok)
    print(f"    {'ok  ' if ok else 'FAIL'}  {what}{': ' + detail if detail else ''}", flush=True)


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return answer.read().decode()


def start(cmd, env):
    log = open(work / f"{Path(cmd[0]).name}-{len(procs)}.log", "w")  # noqa: SIM115 (lives as long as the process)
    procs.append(subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT))


def wait_for(url, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            get(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"test-dashboard: {url} did not answer within {seconds} s")


def query(expr, at=None):
    params = {"query": expr, **({"time": str(at)} if at else {})}
    answer = json.loads(get(f"http://127.0.0.1:{PROM}/api/v1/query?" + urllib.parse.urlencode(params)))
    return answer["data"]["result"]


def query_range(expr, start_s, end_s, step=1):
    params = {"query": expr, "start": str(start_s), "end": str(end_s), "step": str(step)}
    answer = json.loads(get(f"http://127.0.0.1:{PROM}/api/v1/query_range?" + urllib.parse.urlencode(params)))
    return answer["data"]["result"]


def main():
    prometheus = os.environ.get("PROMETHEUS") or shutil.which("prometheus")
    if not prometheus:
        raise SystemExit("test-dashboard: prometheus is not installed (apt-get install --no-install-recommends prometheus)")
    files = {"COUNTER_FILE": str(work / "pingpong_counter.txt"), "LOG_FILE": str(work / "output.log"), "RUST_LOG": "warn"}
    start([str(BIN / "pingpong")], {**files, "PORT": str(PINGPONG)})
    start([str(BIN / "log-output"), "writer"], {**files, "METRICS_PORT": str(WRITER), "WRITE_INTERVAL_MS": "1000"})
    start([str(BIN / "log-output"), "reader"], {**files, "PORT": str(READER)})
    (work / "prometheus.yml").write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{HERE / 'rules' / 'pingpong.rules.yaml'}"]
scrape_configs:
  - job_name: pingpong
    static_configs: [{{targets: ["127.0.0.1:{PINGPONG}"]}}]
  - job_name: log-output
    static_configs:
      - {{targets: ["127.0.0.1:{WRITER}"], labels: {{container: writer}}}}
      - {{targets: ["127.0.0.1:{READER}"], labels: {{container: reader}}}}
""")
    start([prometheus, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'tsdb'}",
           f"--web.listen-address=127.0.0.1:{PROM}", "--log.level=warn"], {})
    for url in (f"http://127.0.0.1:{PINGPONG}/readyz", f"http://127.0.0.1:{READER}/healthz",
                f"http://127.0.0.1:{WRITER}/healthz", f"http://127.0.0.1:{PROM}/-/ready"):
        wait_for(url)

    print(f"==> load: {RATE} pings a second for {LOAD_SECONDS} s, and reads of the log", flush=True)
    answered = []
    stop = threading.Event()

    def pinger(share):
        interval = share / RATE  # each thread its share of the rate
        next_at = time.monotonic()
        while not stop.is_set():
            try:
                if get(f"http://127.0.0.1:{PINGPONG}/pingpong").startswith("pong "):
                    answered.append(time.monotonic())
            except OSError:
                pass
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def reader():
        while not stop.is_set():
            for path in ("/", "/log?tail=5"):
                try:
                    get(f"http://127.0.0.1:{READER}{path}")
                except OSError:
                    pass
            time.sleep(0.2)

    threads = [threading.Thread(target=pinger, args=(5,)) for _ in range(5)] + [threading.Thread(target=reader)]
    began = time.time()
    for t in threads:
        t.start()
    time.sleep(LOAD_SECONDS)
    # The panels at the end of the load, while it still runs.
    at = time.time()
    window = [t for t in answered if t > time.monotonic() - 60]
    seen_rate = len([t for t in answered if t > time.monotonic() - 20]) / 20
    stop.set()
    for t in threads:
        t.join()
    print(f"    the clients were answered {len(answered)} times, {seen_rate:.0f} a second over the last 20 s", flush=True)
    del window

    dashboard = json.loads((HERE / "dashboard" / "pingpong.json").read_text())
    print(f"==> every query of the {len(dashboard['panels'])} panels, at the end of the load", flush=True)
    values = {}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            result = query(target["expr"].replace("$__rate_interval", RATE_INTERVAL), at)
            finite = [float(r["value"][1]) for r in result if r["value"][1] not in ("NaN", "+Inf", "-Inf")]
            values[target["expr"]] = finite
            check(f"{panel['title']} [{target['legendFormat']}] returns data", bool(finite),
                  f"{len(result)} series, {', '.join(f'{v:.4g}' for v in finite[:4])}")

    def value(expr_start):
        return next((v for e, v in values.items() if e.startswith(expr_start)), [float("nan")])[0]

    pps = value("sum(rate(pingpong_pings_answered_total")
    check("pings per second is near the rate the clients were answered at", abs(pps - seen_rate) <= 0.2 * seen_rate,
          f"Prometheus {pps:.1f}/s, the clients {seen_rate:.1f}/s")
    check("pings per commit is at least 1", value("sum(rate(pingpong_commit_pings_sum") >= 1.0)
    epm = value("sum(rate(log_output_writer_entries_appended_total")
    check("log entries per minute is near 60 (one a second)", 48 <= epm <= 72, f"{epm:.1f}")
    age = value("max(log_output_writer_last_append_age_seconds)")
    check("the last entry is younger than two intervals", age < 2.5, f"{age:.2f} s")

    time.sleep(2.5)  # two scrapes after the last ping
    count = int(get(f"http://127.0.0.1:{PINGPONG}/pings"))
    gauge = query("max(pingpong_pings)")
    check("the count panel is what /pings answers", bool(gauge) and int(float(gauge[0]["value"][1])) == count,
          f"panel {gauge[0]['value'][1] if gauge else 'none'}, /pings {count}")
    check("the count is every ping answered", count == len(answered), f"{count} vs {len(answered)} answers")

    rules = json.loads(get(f"http://127.0.0.1:{PROM}/api/v1/rules"))["data"]["groups"]
    names = [r["name"] for g in rules for r in g["rules"]]
    firing = [r["name"] for g in rules for r in g["rules"] if r.get("state") == "firing"]
    # Every alert of the rules file (each starts a line `- alert: NAME`).
    written = sum(1 for line in open(HERE / "rules" / "pingpong.rules.yaml") if line.strip().startswith("- alert:"))
    check("the alert rules are loaded, none firing on a healthy system", len(names) == written and not firing,
          f"{len(names)} rules loaded of {written}, firing: {firing or 'none'}")

    if PLOT:
        plot(dashboard, began, at)
    passed, failed = results.count(True), results.count(False)
    print(f"\n{passed} passed, {failed} failed")
    return 1 if failed else 0


def plot(dashboard, began, ended):
    """Each panel as a small multiple, from range queries over the run."""
    width, height, cols = 460, 190, 2
    panels = dashboard["panels"]
    rows = (len(panels) + cols - 1) // cols
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{cols * width}" height="{rows * height + 30}" '
           'font-family="sans-serif" font-size="11">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="10" y="18" font-size="13">The dashboard\'s panels, from the real Prometheus during '
           f'monitoring/test-dashboard.py ({RATE} pings/s for {LOAD_SECONDS} s; one entry a second)</text>']
    for i, panel in enumerate(panels):
        x0, y0 = (i % cols) * width + 50, (i // cols) * height + 50
        w, h = width - 70, height - 60
        series = []
        for target in panel["targets"]:
            for r in query_range(target["expr"].replace("$__rate_interval", RATE_INTERVAL), began, ended):
                points = [(float(t), float(v)) for t, v in r["values"] if v not in ("NaN", "+Inf", "-Inf")]
                label = target["legendFormat"]
                for key, val in r["metric"].items():
                    label = label.replace("{{" + key + "}}", val)
                if points:
                    series.append((label, points))
        top = max([v for _, p in series for _, v in p] + [1e-9]) * 1.1
        out.append(f'<text x="{x0}" y="{y0 - 8}" font-size="12">{panel["title"]}</text>')
        out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#ccc"/>')
        out.append(f'<text x="{x0 - 4}" y="{y0 + 8}" text-anchor="end">{top:.3g}</text>')
        out.append(f'<text x="{x0 - 4}" y="{y0 + h}" text-anchor="end">0</text>')
        for j, (label, points) in enumerate(series[:6]):
            path = " ".join(f"{x0 + (t - began) / (ended - began) * w:.1f},{y0 + h - v / top * h:.1f}" for t, v in points)
            out.append(f'<polyline fill="none" stroke="{colours[j % 6]}" stroke-width="1.5" points="{path}"/>')
            out.append(f'<text x="{x0 + 4 + (j % 3) * 130}" y="{y0 + h + 14 + (j // 3) * 12}" fill="{colours[j % 6]}">{label}</text>')
    out.append("</svg>")
    Path(PLOT).write_text("\n".join(out) + "\n")
    print(f"    wrote {PLOT}")


if __name__ == "__main__":
    try:
        code = main()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(code)
