#!/usr/bin/env bash
# A short real flow with an installed modelreg (no source tree on the path): init, register, render,
# deploy, in a new git repository with a local DVC remote. Catches missing package data.
# Usage: smoke.sh MODELREG_BINARY WORK_DIR
set -euo pipefail
modelreg=$1
work=$2
mkdir -p "$work/store" "$work/registry"
cd "$work/registry"
git init -q
git config user.name "modelreg release"
git config user.email "release@modelreg.invalid"
"$modelreg" --version
"$modelreg" init --remote "$work/store" --default-model churn
head -c 4096 /dev/urandom > "$work/model.pt"
cat > "$work/card.yaml" <<'CARD'
signature:
  inputs: [{name: features, dtype: float32, shape: [-1, 4]}]
  outputs: [{name: logits, dtype: float32, shape: [-1, 2]}]
CARD
"$modelreg" register churn "$work/model.pt" --no-inspect --card "$work/card.yaml" -m "release smoke test"
"$modelreg" render churn@v1 --env staging -o "$work/rendered"
"$modelreg" deploy churn@v1 --env staging
grep -q "MODELREG_PACKAGE: modelreg==$("$modelreg" --version | awk '{print $NF}')" .github/workflows/modelreg.yml
grep -h "image:" "$work/rendered/deployment.yaml" | sort -u
echo "smoke test passed"
