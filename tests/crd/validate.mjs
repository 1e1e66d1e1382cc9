// Validate Kubernetes objects against the Gateway API and Prometheus Operator CRD schemas, with the
// validators @kubernetes-models generates from those CRDs (installed by `make tools` into
// .tools/k8s-models). Reads a JSON list of objects on stdin; prints one line per invalid object and
// exits 1 when there is one. tests/test_canary.py runs it on every object modelreg renders itself.
import { pathToFileURL } from "node:url";

const root = process.argv[2];
const packages = {
  "gateway.networking.k8s.io": "@kubernetes-models/gateway-api",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};
let input = "";
for await (const chunk of process.stdin) input += chunk;
let failed = 0;
for (const obj of JSON.parse(input)) {
  const [group, version] = obj.apiVersion.split("/");
  const where = `${obj.kind} ${obj.metadata?.name}`;
  if (!(group in packages)) {
    console.log(`${where}: no CRD known for ${obj.apiVersion}`);
    failed++;
    continue;
  }
  const file = `${root}/node_modules/${packages[group]}/${group}/${version}/${obj.kind}.js`;
  const Model = (await import(pathToFileURL(file)))[obj.kind];
  try {
    new Model(obj).validate();
  } catch (err) {
    console.log(`${where}: ${err.message.replace(/\s+/g, " ")}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
