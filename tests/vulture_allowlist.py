"""Names vulture (make lint) cannot see used: each is called or read by something outside Python's
call graph. A name here that the code no longer has is dead: delete it from both."""

# ruff: noqa: B018, F821
# Methods and parameters that model-signing, PyYAML, Jinja, uvicorn, KServe and http.server call
_.hash  # model_signing's hasher interface (artifact_signature.py)
files_to_hash
model_path
_.add_ignored_paths
_.ignore_aliases  # PyYAML's Dumper hook (card.py)
intercepted_binops  # Jinja's SandboxedEnvironment (sandbox.py)
__self
signum  # signal handler signature (sandbox.py)
_.predict  # KServe's Model interface (serving/runtime.py)
response_headers
max_workers  # KServe's GRPCServer.start signature (serving/server.py)
_.should_exit  # uvicorn's Server flag (serving/transport.py)
_.log_message  # http.server's logging hook (sitegen.py)

# Fields read by the Jinja templates (templates/*.j2, templates/site/*.j2) or written to --json
exit_code
replicas
min_replicas
max_replicas
target_cpu_percent
memory
cpu_limit
memory_limit
gpu
termination_grace_seconds
model_format
attempts
card_text
against
_.against
torch_version
policy_source  # analysis records (--json, the record file)
finished
gateway_namespace  # templates/cluster/route.yaml.j2
monitoring  # templates/cluster/*.j2
