"""Continual-learning strategies, one file each; ``REGISTRY`` maps CLI names to classes."""

from lifelong.learn.strategy import REGISTRY, Strategy
from lifelong.strategies.adapters import Adapters
from lifelong.strategies.agem import AGEM
from lifelong.strategies.cpg import CPG
from lifelong.strategies.cumulative import Cumulative
from lifelong.strategies.den import DEN
from lifelong.strategies.der import DER, DERPP
from lifelong.strategies.er_ace import ERACE
from lifelong.strategies.ewc import EWC, OnlineEWC
from lifelong.strategies.gdumb import GDumb
from lifelong.strategies.gem import GEM
from lifelong.strategies.generative_replay import GenerativeReplay
from lifelong.strategies.gpm import GPM
from lifelong.strategies.hat import HAT
from lifelong.strategies.icarl import ICaRL
from lifelong.strategies.joint import Joint
from lifelong.strategies.l2 import L2
from lifelong.strategies.lwf import LwF
from lifelong.strategies.mas import MAS
from lifelong.strategies.mer import MER
from lifelong.strategies.mir import MIR
from lifelong.strategies.multihead import MultiHead
from lifelong.strategies.naive import Naive
from lifelong.strategies.ncm import NCM
from lifelong.strategies.ogd import OGD
from lifelong.strategies.packnet import PackNet
from lifelong.strategies.per_experience import PerExperienceModels
from lifelong.strategies.pnn import PNN
from lifelong.strategies.replay import Replay
from lifelong.strategies.rwalk import RWalk
from lifelong.strategies.scp import SCP
from lifelong.strategies.si import SI
from lifelong.strategies.tuning import Tuned, tuned

__all__ = [
    "AGEM",
    "DER",
    "DERPP",
    "ERACE",
    "EWC",
    "GEM",
    "GPM",
    "L2",
    "MAS",
    "MER",
    "MIR",
    "NCM",
    "OGD",
    "REGISTRY",
    "SCP",
    "SI",
    "Cumulative",
    "GDumb",
    "GenerativeReplay",
    "ICaRL",
    "Joint",
    "LwF",
    "Naive",
    "OnlineEWC",
    "RWalk",
    "Replay",
    "Tuned",
    "Strategy",
    "Adapters",
    "CPG",
    "DEN",
    "HAT",
    "MultiHead",
    "PackNet",
    "PerExperienceModels",
    "PNN",
    "tuned",
]
