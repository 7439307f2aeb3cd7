"""Eaton load-balancing cluster keys (seed 003 table 5, "Load balancing")."""

from __future__ import annotations

from ..registry import Effect, KeyDef
from ..value_types import Bool, Int, IpAddress, Text, Url

LOAD_BALANCING = "Eaton load balancing"
REBOOT = Effect.REBOOT

KEYS = (
    KeyDef("LoadBalancingAlgo", Text(choices=("UNIFORM", "OPTIMIZED", "SUSPENDABLE")), "SUSPENDABLE",
           family=LOAD_BALANCING, description="How the cluster shares current: UNIFORM, OPTIMIZED, SUSPENDABLE"),
    KeyDef("LoadBalancingChargerPrivilege", Text(choices=("AC05", "AC10")), "AC05", family=LOAD_BALANCING,
           description="Priority of this station: AC05 low, AC10 high"),
    KeyDef("LoadBalancingEnabled", Bool(), False, family=LOAD_BALANCING, description="Load balancing on/off"),
    KeyDef("LoadBalancingEnergyMeterEnabled", Bool(), False, family=LOAD_BALANCING, effect=REBOOT,
           description="Use an external building meter (Modbus TCP)"),
    KeyDef("LoadBalancingEnergyMeterIP", IpAddress(), "", family=LOAD_BALANCING, effect=REBOOT,
           description="Address of the external meter (IP[:port], Modbus TCP)"),
    KeyDef("LoadBalancingEnergyMeterType", Text(choices=("Janitza", "CarloGavazzi")), "Janitza",
           family=LOAD_BALANCING, effect=REBOOT, description="External meter make: Janitza or CarloGavazzi"),
    KeyDef("LoadBalancingFallbackCurrent", Int(0, 80), 6, family=LOAD_BALANCING, unit="A",
           description="Current while the cluster link is lost; held 30 s, then 0"),
    KeyDef("LoadBalancingMasterURI", Url(), "wss://eatongm:8443/{BoxId}", family=LOAD_BALANCING, reconnects=True,
           description="URL of the cluster master"),
    KeyDef("LoadBalancingMaxBuilding", Int(0, 10000), 0, family=LOAD_BALANCING, unit="A",
           description="Current available to the whole building"),
    KeyDef("LoadBalancingMaxCluster", Int(0, 10000), 0, family=LOAD_BALANCING, unit="A",
           description="Current available to the stations of the cluster"),
    KeyDef("LoadBalancingMinCluster", Int(0, 80), 0, family=LOAD_BALANCING, unit="A",
           description="Current per station while the external meter is disconnected"),
    KeyDef("LoadBalancingMode", Text(choices=("Slave", "Master")), "Slave", family=LOAD_BALANCING, effect=REBOOT,
           description="Role of this station in the cluster"),
    KeyDef("LoadBalancingPhaseBalBound", Int(0, 80), 16, family=LOAD_BALANCING, unit="A",
           description="Largest allowed difference between phases L1, L2, L3"),
    KeyDef("LoadBalancingPhaseBalTrigger", Bool(), True, family=LOAD_BALANCING, description="Phase balancing on/off"),
    KeyDef("LoadBalancingStartCurrent", Int(0, 80), 0, family=LOAD_BALANCING, unit="A",
           description="Current limit of a slave until the master assigns one"),
)
