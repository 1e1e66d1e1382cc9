#!/usr/bin/env bash
# A short tour of modelreg on a local, embedded setup: a bare git "origin", a registry clone and a
# directory DVC remote, all in a temp folder. Needs `modelreg` and torch on PATH (`make demo` does that).
set -euo pipefail

TOUR=$(mktemp -d "${TMPDIR:-/tmp}/modelreg-demo.XXXXXX")
DEMO=$(cd "$(dirname "$0")" && pwd)
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "A bare origin, a registry clone and a DVC remote in $TOUR"
git init -q --bare "$TOUR/origin.git"
git clone -q "$TOUR/origin.git" "$TOUR/registry" 2>/dev/null
mkdir "$TOUR/dvc-remote"
cd "$TOUR/registry"
git config user.name "Demo User"
git config user.email "demo@example.com"
run modelreg init --remote "$TOUR/dvc-remote" --default-model churn
git push -q origin HEAD:main

step "Three tiny torch models (TorchScript), trained elsewhere"
python - "$TOUR" <<'PY'
import sys, torch
torch.manual_seed(0)
for i, hidden in enumerate((8, 16, 32), start=1):
    model = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2))
    torch.jit.script(model).save(f"{sys.argv[1]}/churn-{i}.pt")
PY
cat > "$TOUR/card.yaml" <<'YAML'
description: "Churn classifier: 4 features in, 2 logits out"
framework: pytorch
signature:
  inputs: [{name: features, shape: [-1, 4], dtype: float32}]
  outputs: [{name: logits, shape: [-1, 2], dtype: float32}]
YAML
run modelreg register churn "$TOUR/churn-1.pt" -m "baseline" --metric auc=0.81 --card "$TOUR/card.yaml"
run modelreg register churn "$TOUR/churn-2.pt" -m "wider hidden layer" --metric auc=0.86
run modelreg register churn "$TOUR/churn-3.pt" -m "wider still" --metric auc=0.88
git push -q origin HEAD:main --tags

step "Trust but verify: the bytes are in the remote, and v3 loads and keeps its signature"
run modelreg verify --all --deep
run modelreg validate churn@v3 --record

step "v1 and v2 go to staging, then prod (prod requires staging)"
for v in v1 v2; do
  run modelreg deploy "churn@$v" --env staging
  run modelreg promote "churn@$v" --to prod
done

step "v3 goes to staging and is promoted to prod"
run modelreg deploy churn@v3 --env staging
run modelreg promote churn@v3 --to prod
V3_COMMIT=$(git rev-parse deploy)

PORT=${MODELREG_DEMO_PORT:-18080}
serve_prod() {  # what prod's pods would run: the live version, pulled and verified, on 127.0.0.1
  printf '$ modelreg serve --env prod --port %s &\n' "$PORT"
  modelreg serve --env prod --port "$PORT" >"$TOUR/serve.log" 2>&1 &
  SERVER=$!
  python "$DEMO/ask.py" "$PORT" churn || { cat "$TOUR/serve.log"; kill "$SERVER"; exit 1; }
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
}
step "Serve prod (the Open Inference Protocol) and ask it"
serve_prod

step "v3 misbehaves in prod: roll back to the last good version (a new commit; history only grows)"
run modelreg rollback --env prod --push

step "Serve prod again: v2 answers now"
serve_prod

step "Keep v3 out everywhere: quarantine it (a commit on the deploy branch: who, when, why)"
run modelreg quarantine churn@v3 --reason "wrong calibration on March traffic" --push
printf '$ modelreg promote churn@v3 --to prod   # refused\n'
modelreg promote churn@v3 --to prod || true
printf '$ modelreg status   # staging still runs v3: flagged; prod is held by the rollback\n'
modelreg status

step "What the registry knows"
run modelreg list
run modelreg show churn@v3
run modelreg history

step "What the rollback changed in prod's manifests (v3 -> v2)"
run git --no-pager diff --stat "$V3_COMMIT" deploy -- prod/churn
git --no-pager diff "$V3_COMMIT" deploy -- prod/churn/deployment.yaml | grep -E '^[-+][^-+]' | head -n 20

if command -v prometheus >/dev/null; then
step "Canaries judged on real traffic: two more versions, one that fails on part of its inputs"
python "$DEMO/canary_models.py" "$TOUR"
run modelreg register churn "$TOUR/churn-4.pt" -m "new features (breaks on large inputs)"
run modelreg register churn "$TOUR/churn-5.pt" -m "retrained"
git push -q origin HEAD:main --tags
run modelreg deploy churn@v4 --env staging
run modelreg deploy churn@v5 --env staging
printf '$ # prod: split traffic at the Gateway "public", analyze with short windows (the demo'"'"'s)\n'
python - <<'PY'
text = open("modelreg.yaml").read()
policy = """    canary:
      gateway: public
      steps: [10, 50]
      interval: 2s
      count: 2
      window: 10s
      min_requests: 20
      max_p99_ratio: 20
"""
open("modelreg.yaml", "w").write(text.replace("    max_replicas: 6\n", "    max_replicas: 6\n" + policy, 1))
PY
git commit -qam "prod: canary policy" && git push -q origin HEAD:main

# prod's stable pods and the candidate's, played by `modelreg serve` on 127.0.0.1, scraped by a
# real Prometheus (labelled namespace=prod, as a PodMonitor would), under a bounded load
P_STABLE=$((PORT + 1)); P_CANDIDATE=$((PORT + 2)); P_PROM=$((PORT + 3))
canary_run() {  # VERSION: serve prod's live version and VERSION, scrape them, send them traffic
  modelreg serve --env prod --port "$P_STABLE" >"$TOUR/stable.log" 2>&1 & STABLE=$!
  modelreg serve "churn@$1" --port "$P_CANDIDATE" >"$TOUR/candidate.log" 2>&1 & CANDIDATE=$!
  cat > "$TOUR/prometheus.yml" <<YAML
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: modelreg
    static_configs:
      - targets: ["127.0.0.1:$P_STABLE", "127.0.0.1:$P_CANDIDATE"]
        labels: {namespace: prod}
YAML
  rm -rf "$TOUR/tsdb"
  prometheus --config.file="$TOUR/prometheus.yml" --storage.tsdb.path="$TOUR/tsdb" \
    --web.listen-address="127.0.0.1:$P_PROM" --log.level=warn >"$TOUR/prometheus.log" 2>&1 & PROM=$!
  python "$DEMO/ask.py" "$P_STABLE" churn >/dev/null && python "$DEMO/ask.py" "$P_CANDIDATE" churn >/dev/null
  python "$DEMO/load.py" 60 "$P_STABLE" "$P_CANDIDATE" & LOAD=$!
  echo "(serving prod's stable version and churn@$1, Prometheus on 127.0.0.1:$P_PROM, 8 requests/s each; 15 s of traffic first)"
  sleep 15
}
canary_stop() { kill "$LOAD" "$STABLE" "$CANDIDATE" "$PROM" 2>/dev/null; wait 2>/dev/null || true; }
PROMETHEUS_URL="http://127.0.0.1:$P_PROM"

step "Canary 1: churn@v4 on 10% of prod; the analysis fails it and aborts (exit 4)"
run modelreg canary start churn@v4 --env prod --weight 10 --push
canary_run v4
printf '$ modelreg analyze --env prod --prometheus %s --record --on-fail abort --push\n' "$PROMETHEUS_URL"
modelreg analyze --env prod --prometheus "$PROMETHEUS_URL" --record --on-fail abort --push && exit 1 || echo "(exit $?)"
canary_stop
run modelreg status --env prod --no-render

step "Canary 2: churn@v5 passes at 10% and 50%, and is promoted"
run modelreg release prod --model churn --reason "v4 aborted; trying v5" --push
run modelreg canary start churn@v5 --env prod --push
canary_run v5
run modelreg analyze --env prod --prometheus "$PROMETHEUS_URL" --record --push
run modelreg canary step --env prod --push
sleep 3
run modelreg analyze --env prod --prometheus "$PROMETHEUS_URL" --record --push
canary_stop
run modelreg canary promote --env prod --push
run modelreg history --env prod
run modelreg show churn@v4
else
  echo "(the canary part needs Debian's prometheus: apt-get install prometheus)"
fi

step "The registry as web pages (static: open them, or publish them; \`modelreg ui\` serves them live)"
run modelreg site -o "$TOUR/site"

step "Done"
echo "Everything is in $TOUR: the registry clone, origin.git (deploy branch pushed) and the DVC remote."
echo "Argo CD or Flux would sync origin.git's deploy branch: prod/churn/*.yaml describes what status says runs."
echo "What prod ran right after v3 was promoted (history --at):"
modelreg history --env prod --at "$(git log -1 --format=%cI "$V3_COMMIT")"
echo
echo "The site: $TOUR/site/index.html"
