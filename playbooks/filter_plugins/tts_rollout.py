"""site.yml's rollout plan: which instances change, in which order, and where the VIP goes.

Pure function of what the nodes said (check-mode comparison of the containers, VIP holders from
tasks/cluster/discover.yml), so the order is unit-tested without a lab (tests/rollout).
"""


def _instance_order(instances):
    """On one host: the instances that are not serving (standbys) first, the primary last."""
    return ([i for i in instances if i.get("profile") != "primary"]
            + [i for i in instances if i.get("profile") == "primary"])


def rollout_plan(instances, pending, present, holders, vip, enabled=True, contract_changed=False):
    """Plan a change through the pair.

    instances: [{host, name, profile, port}] (discover.yml's tts_ha_instances)
    pending:   {host: [instance names whose container would change]} (check-mode comparison)
    present:   {host: true when every instance of the host has a container already}
    holders:   hosts that hold the VIP now; vip: the VIP ('' without keepalived)
    enabled:   tts_ha_rollout (false: the plain one-host-at-a-time deploy)
    contract_changed: the API contract differs from the one the nodes' checks speak (another
               preset: clients change too, no rollout can keep them served): a plain deploy

    mode: none (nothing would change), deploy (first deploy, an instance missing, a new API
    contract, or the rollout turned off: roles/tts_service's plain order), rollout (every instance exists: holder last,
    canary, handover).
    """
    hosts = sorted({i["host"] for i in instances})
    by_host = {h: _instance_order([i for i in instances if i["host"] == h]) for h in hosts}
    changed = {h: [i["name"] for i in by_host[h] if i["name"] in (pending.get(h) or [])] for h in hosts}
    primary = next((i for i in instances if i.get("profile") == "primary"), None)
    primary_host = primary["host"] if primary else (hosts[0] if hosts else None)
    plan = {"mode": "none", "hosts": hosts, "primary_host": primary_host, "holder": None,
            "first": [], "last": [], "order": [], "canary": None, "handover": False,
            "handover_to": None, "changed": changed}
    if not any(changed.values()):
        return plan
    if not enabled or contract_changed or not all(present.get(h, False) for h in hosts):
        plan["mode"] = "deploy"
        return plan
    plan["mode"] = "rollout"
    # The node clients reach now: the VIP holder (asked of the nodes); without a VIP (or with it
    # on no node or on several: refused before anything changes) the primary's node.
    holder = holders[0] if vip and len(holders) == 1 else primary_host
    plan["holder"] = holder
    plan["first"] = [h for h in hosts if h != holder and changed[h]]
    plan["last"] = [holder] if changed.get(holder) else []
    plan["order"] = [{"host": h, "name": n} for h in plan["first"] + plan["last"] for n in changed[h]]
    plan["canary"] = plan["order"][0]
    others = [h for h in hosts if h != holder]
    if vip and plan["last"] and others:
        plan["handover"] = True
        # The VIP goes to a node that was just verified: the primary's when it is not the holder,
        # else the first other node (its instances pass the gate before the handover).
        changed_others = [h for h in others if changed[h]]
        preferred = [h for h in others if h == primary_host] or changed_others or others
        plan["handover_to"] = preferred[0]
    return plan


class FilterModule:
    def filters(self):
        return {"tts_rollout_plan": rollout_plan}
