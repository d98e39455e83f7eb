"""Drives our server with the official Python client (`pip install polyaxon`), unchanged.

Usage: python client_compat.py HOST TOKEN
Exits 0 when every step worked; prints what it did.
"""
import sys
import time

from polyaxon.client import PolyaxonClient, ProjectClient, RunClient
from polyaxon._schemas.client import ClientConfig

host, token = sys.argv[1], sys.argv[2]
config = ClientConfig(host=host, token=token, use_https=False, verify_ssl=False)
client = PolyaxonClient(config=config, token=token)

project = ProjectClient(owner="root", client=client)
created = project.create({"name": "compat", "description": "from the python client", "tags": ["py"]})
assert created.name == "compat", created
project = ProjectClient(owner="root", project="compat", client=client)
project.refresh_data()
assert project.project_data.description == "from the python client", project.project_data

runs = []
for lr, acc in [(0.1, 0.7), (0.01, 0.9)]:
    run = RunClient(owner="root", project="compat", client=client)
    r = run.create(name=f"py-lr-{lr}", tags=["py", "compat"], is_managed=False)
    assert r.uuid and r.status == "created", r
    run.log_inputs(lr=lr, batch=32)
    run.log_outputs(acc=acc)
    run.log_status("running", reason="Tracking", message="started by the test")
    run.log_succeeded()
    runs.append(run)

run = runs[1]
# The client sends statuses from a background thread: wait for the last one.
for _ in range(50):
    run.refresh_data()
    if run.run_data.status == "succeeded":
        break
    time.sleep(0.1)
data = run.run_data
assert data.inputs == {"lr": 0.01, "batch": 32}, data.inputs
assert data.outputs == {"acc": 0.9}, data.outputs
assert data.status == "succeeded", data.status

statuses, conditions = run.get_statuses()
assert statuses == "succeeded", statuses
kinds = [c.type for c in conditions]
assert kinds == ["created", "running", "succeeded"], kinds

found = run.list(query="status: succeeded, params.lr: <0.05")
assert found.count == 1 and found.results[0].uuid == run.run_uuid, found
ordered = run.list(sort="-outputs.acc")
assert [r.name for r in ordered.results] == ["py-lr-0.01", "py-lr-0.1"], [r.name for r in ordered.results]

run.log_meta(stage="test", async_req=False)
run.refresh_data()
assert run.run_data.meta_info.get("stage") == "test", run.run_data.meta_info
print("ok:", [r.run_uuid for r in runs])
