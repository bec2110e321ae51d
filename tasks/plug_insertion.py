"""Plug insertion — one arm steadies a light power strip, the other pushes a plug into the matching outlet.

Task description:
    A socket block (power strip) with three outlets on its front face — two flat blades (US), two round pins
    (Europlug) and a USB-A-like rectangular connector — stands on the table between the arms, front face towards
    the right arm. A plug of one type stands on the table in front of it, prongs towards the strip. The left arm
    holds the strip by the handle on its back; the right arm picks the plug up from above and pushes it into the
    outlet of its type. Each hole has a spring-loaded safety shutter, so seating a plug takes a 2–3.5 N push, and the
    strip is light (0.2 kg) on a narrow foot: pushed without the other arm steadying it, it slides or tips away.
    Holes leave `clearance` (1 mm) of total play and the prongs' friction on the face plate (`insertion_friction`)
    is 0.5, so a push off by more than half the clearance jams on the face: touch (the shear on the pads holding the
    plug) tells a jam from a free slide, and a search in the face plane finds the hole.
    `plug_insertion_occluded` adds a hood over the outlets that hides them, and the last ≈2 cm of the plug's
    approach, from `cam_high`; the wrist cameras still see under it.

Randomizations (with the default config):
    - plug type: uniform over flat, round, rect, minus `held_out`; `plug_type` fixes it
    - strip: front-face centre x = −0.07 ± 0.02 m, y uniform in ±0.03 m; yaw uniform in ±0.2 rad
    - plug: face centre x = 0.02 ± 0.02 m, y uniform in ±0.05 m (standing on its housing); yaw uniform in ±0.3 rad
    - colours: strip one of white, grey, black; plug housing one of black, white, red, blue (named in the
      instruction), each ± `visual.color_jitter`
    - everything in `EnvCfg.randomization` (friction ×0.8–1.2, masses ×0.8–1.25, servo gains, light, cameras,
      touch gains and noise, initial joints)

Success conditions:
    The plug is seated: its prongs are inside the outlet of its type to at least the prong length minus
    `depth_tol` (3 mm), the plug's face centre is within `lateral_tol` (2 mm) of the outlet axis, and the plug's
    frame is within `angle_tol` (0.15 rad) of the outlet's.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rho.assets.mjcf import SceneSpec
from rho.assets.plug_socket import PLUG_TYPES, PlugSocketSpec, PlugType, default_plugs, make_plug_socket
from rho.sim.env import BatchedEnv, EnvCfg

from .registry import register_expert, register_task

STRIP_COLORS = {"white": (0.92, 0.92, 0.9), "grey": (0.55, 0.56, 0.58), "black": (0.15, 0.15, 0.16)}
PLUG_COLORS = {"black": (0.12, 0.12, 0.13), "white": (0.9, 0.9, 0.88), "red": (0.8, 0.18, 0.15),
               "blue": (0.2, 0.35, 0.8)}
INSTRUCTIONS = ("plug the {p} into the power strip", "insert the {c} {p} into its socket",
                "hold the power strip steady and plug in the {p}",
                "push the {p} all the way into the matching outlet", "connect the {c} {p} to the socket block",
                "steady the strip with one hand and insert the {p}")
STRIP_XY = (-0.07, 0.0)  # nominal front-face centre of the strip (m)
PLUG_XY = (0.02, 0.0)  # nominal plug face centre (m)
GRIP_BEHIND = 0.045  # a TCP holding the plug sits this far behind its face (m): fingertips clear the strip
ALIGN_LATERAL = 0.008  # plug face centre to outlet axis that counts as in front of the outlet (m): more than the
# occluded expert's widest search (3 mm estimate error + 4.5 mm spiral), so a search stays "aligned"
ALIGN_DEPTH = -0.02  # prong tips at most this far outside the face (insertion_depth, m) count as in front of it


@dataclass
class PlugInsertionCfg(EnvCfg):
    """Plug-insertion settings on top of `EnvCfg` (asset geometry, physics, draws, success tolerances)."""

    episode_length_s: float = 12.0  # s
    plug_type: PlugType | None = None  # fix the plug type; None draws it per episode
    held_out: PlugType | None = None  # never drawn at random (evaluate it with plug_type=<type>)
    occluded: bool = False  # hood over the outlets that hides them from cam_high
    hood_length: float = 0.028  # how far the hood sticks out over the outlets when occluded (m)
    clearance: float = 0.001  # total play of a prong in its hole (m)
    hole_depth: float = 0.024  # m
    insertion_friction: float = 0.5  # prongs against the face plate and hole walls
    shutter_force: tuple[float, float] = (2.0, 3.5)  # an outlet's shutters' push-back at rest and 14 mm in (N)
    strip_mass: float = 0.2  # kg
    strip_table_friction: float = 0.5  # strip foot on the table
    strip_xy_range: tuple[float, float] = (0.02, 0.03)  # half-ranges of the strip's x, y (m)
    strip_yaw_range: float = 0.2  # rad
    plug_xy_range: tuple[float, float] = (0.02, 0.05)  # half-ranges of the plug's x, y (m)
    plug_yaw_range: float = 0.3  # rad
    depth_tol: float = 0.003  # seated when inserted to prong length − depth_tol (m)
    lateral_tol: float = 0.002  # plug face centre to outlet axis (m)
    angle_tol: float = 0.15  # plug frame to outlet frame (rad)
    grasp_force: float = 1.0  # per-pad normal force that counts as holding (N)

    def validate(self) -> list[str]:
        return super().validate() + self.asset().validate()

    def asset(self) -> PlugSocketSpec:
        """The plug/strip description this config builds."""
        return make_plug_socket(clearance=self.clearance, hole_depth=self.hole_depth, mass=self.strip_mass,
                                table_friction=self.strip_table_friction, face_friction=self.insertion_friction,
                                shutter_force=tuple(self.shutter_force),
                                hood=self.hood_length if self.occluded else 0.0,
                                plug_kw={"prong_friction": self.insertion_friction})


@dataclass
class PlugInsertionOccludedCfg(PlugInsertionCfg):
    """`plug_insertion` with the outlets hooded from `cam_high`."""

    occluded: bool = True


@register_task("plug_insertion", "rho/PlugInsertion-v0", PlugInsertionCfg)
class PlugInsertionEnv(BatchedEnv):
    cfg: PlugInsertionCfg

    @classmethod
    def default_cfg(cls) -> PlugInsertionCfg:
        return PlugInsertionCfg()

    def _setup_scene(self) -> SceneSpec:
        self.asset = self.cfg.asset()
        return SceneSpec(robot=self.robot, timestep=self.cfg.sim.physics_dt,
                         contact_slots=self.cfg.sim.contact_slots,
                         touch=self.cfg.touch.enabled, extra_worldbody=self.asset.to_mjcf(),
                         dr_bodies=("strip", "plug"))

    # ------------------------------------------------------------------ model indices
    @functools.cached_property
    def _ids(self) -> dict[str, Any]:
        m, kinds = self.model, [p.kind for p in self.asset.strip.plugs]
        # the strip's coloured shell: every strip geom but the dark foot (shutters are child bodies)
        strip_geoms = [g for g in range(m.ngeom) if m.geom_bodyid[g] == m.body("strip").id
                       and m.geom(g).name != "strip/foot"]
        return {
            "strip_q": int(m.jnt_qposadr[m.joint("strip").id]), "plug_q": int(m.jnt_qposadr[m.joint("plug").id]),
            "strip_v": int(m.jnt_dofadr[m.joint("strip").id]), "plug_v": int(m.jnt_dofadr[m.joint("plug").id]),
            "outlet": np.array([m.site(f"strip/outlet_{k}").id for k in kinds]),
            "face": m.site("plug/face").id, "housing": m.geom("plug/housing").id,
            "cable": m.geom("plug/cable").id, "strip_geoms": np.array(strip_geoms, int),
            "prongs": [np.array([m.geom(g).id for g in p.prong_geoms()]) for p in self.asset.strip.plugs],
        }

    @functools.cached_property
    def _state(self) -> dict[str, np.ndarray]:
        """Per-env episode state set at reset: plug type index, prong length (m), strip rest position (m)."""
        n = self.num_envs
        return {"kind": np.zeros(n, int), "length": np.full(n, 0.016), "strip_rest": np.zeros((n, 3))}

    @functools.cached_property
    def _kinds(self) -> list[PlugType]:
        return [p.kind for p in self.asset.strip.plugs]

    @functools.cached_property
    def _onehot(self) -> np.ndarray:
        """Position of each of the asset's plug types in `PLUG_TYPES` (the `plug_type` observation's order)."""
        return np.array([PLUG_TYPES.index(k) for k in self._kinds])

    # ------------------------------------------------------------------ reset
    def _draw_kind(self, rng: np.random.Generator) -> int:
        if self.cfg.plug_type is not None:
            return self._kinds.index(self.cfg.plug_type)
        allowed = [k for k, kind in enumerate(self._kinds) if kind != self.cfg.held_out]
        return int(allowed[rng.integers(len(allowed))])

    def _reset_task(self, env_ids: np.ndarray, rngs: list[np.random.Generator]) -> list[dict[str, Any]]:
        out = [self._reset_one(int(i), rng) for i, rng in zip(env_ids, rngs, strict=True)]
        self.batch.set_models(self._models)
        return out

    def _reset_one(self, i: int, rng: np.random.Generator) -> dict[str, Any]:
        c = self.cfg
        kind = self._draw_kind(rng)
        sx, sy = (STRIP_XY[k] + rng.uniform(-c.strip_xy_range[k], c.strip_xy_range[k]) for k in range(2))
        syaw = rng.uniform(-c.strip_yaw_range, c.strip_yaw_range)
        px, py = (PLUG_XY[k] + rng.uniform(-c.plug_xy_range[k], c.plug_xy_range[k]) for k in range(2))
        pyaw = rng.uniform(-c.plug_yaw_range, c.plug_yaw_range)
        strip_color, plug_color = (list(d)[rng.integers(len(d))] for d in (STRIP_COLORS, PLUG_COLORS))
        ids = self._ids
        self.qpos[i, ids["strip_q"]:ids["strip_q"] + 7] = [sx, sy, 0.0, np.cos(syaw / 2), 0, 0, np.sin(syaw / 2)]
        self.qpos[i, ids["plug_q"]:ids["plug_q"] + 7] = [px, py, self.asset.plug.rest_height, np.cos(pyaw / 2), 0,
                                                         0, np.sin(pyaw / 2)]
        self.qvel[i, ids["strip_v"]:ids["strip_v"] + 6] = 0.0
        self.qvel[i, ids["plug_v"]:ids["plug_v"] + 6] = 0.0
        self._set_looks(i, kind, STRIP_COLORS[strip_color], PLUG_COLORS[plug_color])
        plug = self.asset.strip.plugs[kind]
        self._state["kind"][i], self._state["length"][i] = kind, plug.length
        self._state["strip_rest"][i] = [sx, sy, 0.0]
        name = plug.names[rng.integers(len(plug.names))]
        template = INSTRUCTIONS[rng.integers(len(INSTRUCTIONS))]
        return {"plug_type": plug.kind, "strip_xy": [sx, sy], "strip_yaw": syaw, "plug_xy": [px, py],
                "plug_yaw": pyaw, "strip_color": strip_color, "plug_color": plug_color,
                "instruction": template.format(p=name, c=plug_color)}

    def _set_looks(self, i: int, kind: int, strip_rgb, plug_rgb) -> None:
        """Enable one plug type's prongs in env i's model (the others: no collisions, transparent) and colour the
        strip and plug. Domain randomization jittered each geom's colour on its own; a part made of several geoms
        (the tiled face) takes its first geom's jitter, so it stays one colour."""
        m, nom, ids = self._models[i], self._nominal, self._ids
        for k, geoms in enumerate(ids["prongs"]):
            on = k == kind
            m.geom_contype[geoms] = nom.geom_contype[geoms] if on else 0
            m.geom_conaffinity[geoms] = nom.geom_conaffinity[geoms] if on else 0
            m.geom_rgba[geoms, 3] = 1.0 if on else 0.0
        prongs = np.concatenate(ids["prongs"])
        parts = ((ids["strip_geoms"], strip_rgb), (np.array([ids["housing"], ids["cable"]]), plug_rgb),
                 (prongs, nom.geom_rgba[prongs[0], :3]))
        for geoms, rgb in parts:
            jitter = m.geom_rgba[geoms[0], :3] - nom.geom_rgba[geoms[0], :3]
            m.geom_rgba[geoms, :3] = np.clip(np.asarray(rgb) + jitter, 0, 1)

    @classmethod
    def instruction_examples(cls) -> list[str]:
        plugs = list(default_plugs().values())
        return [t.format(p=plugs[k % len(plugs)].names[k % 3], c=list(PLUG_COLORS)[k % len(PLUG_COLORS)])
                for k, t in enumerate(INSTRUCTIONS)]

    # ------------------------------------------------------------------ privileged state
    def _frames(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Plug face frame and target outlet frame: positions (n, 3) in m and rotations (n, 3, 3), world."""
        ids, n = self._ids, self.num_envs
        out_site = ids["outlet"][self._state["kind"]]
        rows = np.arange(n)
        return (self.site_xpos[:, ids["face"]], self.site_xmat[:, ids["face"]].reshape(n, 3, 3),
                self.site_xpos[rows, out_site], self.site_xmat[rows, out_site].reshape(n, 3, 3))

    def _plug_in_socket(self) -> tuple[np.ndarray, np.ndarray]:
        """Plug face centre in the outlet frame (n, 3) in m, and the angle between the two frames (n,) in rad."""
        p, rp, o, ro = self._frames()
        rel = np.einsum("nji,nj->ni", ro, p - o)
        cos = (np.einsum("nij,nij->n", ro, rp) - 1.0) / 2.0
        return rel, np.arccos(np.clip(cos, -1.0, 1.0))

    def _task_obs_keys(self):
        return [("plug_pose", (7,), "m|quat_wxyz", "plug face centre (world) and orientation (w, x, y, z)"),
                ("socket_pose", (7,), "m|quat_wxyz", "target outlet centre on the face (world) and orientation"),
                ("strip_pose", (7,), "m|quat_wxyz", "strip front-face bottom centre (world) and orientation"),
                ("plug_in_socket", (3,), "m", "plug face centre in the outlet frame (x out of the face)"),
                ("insertion_depth", (1,), "m", "how far the prongs are inside the face (< 0: still outside)"),
                ("plug_type", (len(PLUG_TYPES),), "1", f"one-hot plug type, order {list(PLUG_TYPES)}")]

    def _get_task_obs(self) -> dict[str, np.ndarray]:
        ids = self._ids
        _, _, o, _ = self._frames()
        rel, _ = self._plug_in_socket()
        q = ids["strip_q"]
        socket = np.concatenate([o, self.qpos[:, q + 3:q + 7]], axis=1)  # outlet sites are not rotated
        depth = self._state["length"] - rel[:, 0]
        return {"plug_pose": self._pose(ids["plug_q"]), "socket_pose": socket.astype(np.float32),
                "strip_pose": self._pose(ids["strip_q"]), "plug_in_socket": rel.astype(np.float32),
                "insertion_depth": depth[:, None].astype(np.float32),
                "plug_type": np.eye(len(PLUG_TYPES), dtype=np.float32)[self._onehot[self._state["kind"]]]}

    @classmethod
    def mimic_subtask_signals(cls, obs: Mapping[str, np.ndarray], env_config: Mapping[str, Any]
                              ) -> dict[str, np.ndarray]:
        """Isaac Lab Mimic subtask termination signals of a recorded demo, from its observations (`rho dataset
        export-robomimic mimic=true`, `rho dataset export-isaaclab`); each (T,) bool:

        - `hold_strip` (left arm; its only other subtask, holding, is final): both left pads press above
          `grasp_force` (N) — the strip's handle is the only thing the left gripper closes on;
        - `grasp_plug` (right arm, subtask 1 of 3, relative to the plug): both right pads press above `grasp_force`;
        - `plug_aligned` (right arm, subtask 2 of 3, relative to the socket; insertion is the final subtask): the
          plug is in front of its outlet, ready to be pushed — prong tips within 2 cm of the face
          (`insertion_depth` > −0.02 m), the face centre within `ALIGN_LATERAL` (8 mm) of the outlet axis
          (`plug_in_socket`) and the plug's frame within `angle_tol` (rad) of the outlet's (`plug_pose`,
          `socket_pose` quaternions; the outlet frame is the strip's).

        Grasps hold while both pads stay above half of `grasp_force` (`pad_grasp`). Without recorded pad forces
        (touch off) the grasp signals are left out."""
        from rho.datagen.robomimic import pad_grasp

        force = float(env_config.get("grasp_force", PlugInsertionCfg.grasp_force))
        out: dict[str, np.ndarray] = {}
        for name, arm in (("hold_strip", "left"), ("grasp_plug", "right")):
            sig = pad_grasp(obs, arm, force)
            if sig is not None:
                out[name] = sig
        if all(k in obs for k in ("plug_in_socket", "insertion_depth", "plug_pose", "socket_pose")):
            rel = np.asarray(obs["plug_in_socket"], float)
            qp, qs = np.asarray(obs["plug_pose"], float)[:, 3:], np.asarray(obs["socket_pose"], float)[:, 3:]
            dot = np.abs(np.sum(qp * qs, axis=1)) / (np.linalg.norm(qp, axis=1) * np.linalg.norm(qs, axis=1))
            angle = 2 * np.arccos(np.clip(dot, 0.0, 1.0))
            tol = float(env_config.get("angle_tol", PlugInsertionCfg.angle_tol))
            out["plug_aligned"] = ((np.hypot(rel[:, 1], rel[:, 2]) <= ALIGN_LATERAL)
                                   & (np.asarray(obs["insertion_depth"], float)[:, 0] > ALIGN_DEPTH)
                                   & (angle <= tol))
        return out

    def _pose(self, qadr: int) -> np.ndarray:
        return self.qpos[:, qadr:qadr + 7].astype(np.float32)

    # ------------------------------------------------------------------ success and rewards
    def evaluate(self) -> dict[str, np.ndarray]:
        c, ids = self.cfg, self._ids
        rel, angle = self._plug_in_socket()
        length = self._state["length"]
        depth = length - rel[:, 0]
        lateral = np.hypot(rel[:, 1], rel[:, 2])
        success = (depth >= length - c.depth_tol) & (lateral <= c.lateral_tol) & (angle <= c.angle_tol)
        press = self.pad_forces()[..., 0] > c.grasp_force  # (n, 4): left_a, left_b, right_a, right_b
        tcp = self.site_xpos[:, self.tcp_site]
        grasped = press[:, 2] & press[:, 3] & (np.linalg.norm(tcp[:, 1] - self._grip_point(), axis=1) < 0.03)
        held = press[:, 0] & press[:, 1] & (np.linalg.norm(tcp[:, 0] - self._handle(), axis=1) < 0.04)
        strip_moved = np.linalg.norm(self.qpos[:, ids["strip_q"]:ids["strip_q"] + 3] - self._state["strip_rest"],
                                     axis=1)
        closeness = 1.0 - np.clip(np.linalg.norm(rel, axis=1) / 0.15, 0, 1)
        frac = np.clip(depth / length, 0, 1) * (lateral <= c.lateral_tol)
        progress = np.where(success, 1.0, 0.15 * grasped + 0.15 * held + 0.2 * closeness * grasped + 0.5 * frac)
        return {"success": success, "progress": np.clip(progress, 0.0, 1.0), "insertion_depth": depth,
                "lateral_error": lateral, "angle_error": angle, "plug_grasped": grasped, "strip_held": held,
                "strip_moved": strip_moved}

    def _grip_point(self) -> np.ndarray:
        """(n, 3) where a TCP holds the plug: `GRIP_BEHIND` behind its face on the prong axis (m, world)."""
        face = self._ids["face"]
        return self.site_xpos[:, face] + GRIP_BEHIND * self.site_xmat[:, face].reshape(-1, 3, 3)[..., 0]

    def _handle(self) -> np.ndarray:
        """(n, 3) centre of the strip's handle (m, world)."""
        s = self.asset.strip
        local = np.array([-s.depth - s.handle[0] / 2, 0.0, s.height - s.handle[2] / 2])
        body = self.model.body("strip").id
        rot = _quats_to_mats(self.xquat[:, body])
        return self.xpos[:, body] + rot @ local

    def _get_rewards(self, m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tcp = self.site_xpos[:, self.tcp_site]
        grip = self._grip_point()
        rel, _ = self._plug_in_socket()
        length = self._state["length"]
        entry = rel - np.stack([length + 0.005, 0 * length, 0 * length], axis=1)  # to the pre-insertion point
        aligned = np.exp(-np.hypot(rel[:, 1], rel[:, 2]) / 0.002)
        return {"reach_plug": 0.5 * (1.0 - np.tanh(10.0 * np.linalg.norm(tcp[:, 1] - grip, axis=1))),
                "reach_handle": 0.5 * (1.0 - np.tanh(10.0 * np.linalg.norm(tcp[:, 0] - self._handle(), axis=1))),
                "grasp_plug": 0.5 * m["plug_grasped"], "hold_strip": 0.5 * m["strip_held"],
                "approach": m["plug_grasped"] * (1.0 - np.tanh(10.0 * np.linalg.norm(entry, axis=1))),
                "align": m["plug_grasped"] * aligned,
                "insert": 2.0 * aligned * np.clip(m["insertion_depth"] / length, 0, 1),
                "strip_moved": -np.clip(m["strip_moved"] / 0.05, 0, 1),
                "success": 5.0 * m["success"]}


@register_task("plug_insertion_occluded", "rho/PlugInsertionOccluded-v0", PlugInsertionOccludedCfg)
class PlugInsertionOccludedEnv(PlugInsertionEnv):
    cfg: PlugInsertionOccludedCfg

    @classmethod
    def default_cfg(cls) -> PlugInsertionOccludedCfg:
        return PlugInsertionOccludedCfg()


def _quats_to_mats(q: np.ndarray) -> np.ndarray:
    """(n, 4) quaternions (w, x, y, z) → (n, 3, 3) rotation matrices."""
    w, x, y, z = np.moveaxis(np.asarray(q, float), -1, 0)
    return np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
                     np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
                     np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], -2)


# ---------------------------------------------------------------------- scripted expert
LEFT, RIGHT = 0, 1
UP = np.array([0.0, 0.0, 1.0])
R_ABOVE, R_DESCEND, R_CLOSE, R_LIFT, R_CARRY, R_INSERT, R_SEARCH, R_RETREAT = range(8)  # right arm: the plug
L_ABOVE, L_DESCEND, L_CLOSE, L_HOLD = range(4)  # left arm: the strip


def _top_down(y: np.ndarray) -> np.ndarray:
    """TCP rotation (columns: TCP x, y, z in world) with the fingers pointing down and opening along y's
    horizontal part."""
    y = np.array([y[0], y[1], 0.0]) / max(np.hypot(y[0], y[1]), 1e-9)
    return np.column_stack([-UP, y, np.cross(-UP, y)])


@register_expert("plug_insertion", action_mode="ee_delta")
class PlugInsertionExpert:
    """Scripted bimanual expert for `plug_insertion` in `ee_delta` mode.

    Left arm: above the strip's handle, down, close until both pads press (touch), then hold the strip where it
    stands with the grip force regulated from the pads. Right arm: above the plug, down, close (touch regulated),
    lift, carry the plug in front of its outlet (waiting there until the strip is held), then push along the outlet
    axis, the push force regulated (admittance) from the shear the plug exerts on the pads as the socket pushes it
    back. A jam — shear above `jam_force` while the plug does not advance and its prongs are not in — starts an
    Archimedean spiral in the face plane with a light push, until the plug slides forward or catches on a hole's
    edge (it found the hole); the push resumes from there, and a jam there searches around that spot. A plug that
    sticks part-way, or trails the spiral far behind, backs off 4 mm and pushes again. A lost plug (both pads
    unloaded) is picked up again.

    The expert knows the plug's pose (as the grasp and a wrist camera would) but not the outlet's exactly: its
    outlet estimate is off by up to `estimate_error` (m) in the face plane — a camera estimate's error, more than the
    0.5 mm per side of clearance — so the last millimetres are found by touch. The error is drawn from the episode
    seed, so episodes replay.

    Works on the batch: `act(obs)` → (n, 14) action.
    """

    name, version = "plug_insertion_scripted", "1.0"
    estimate_error = 0.002  # radius of the outlet estimate's error in the face plane (m)
    grip_force = 5.0  # per-pad normal force on the plug (N)
    hold_force = 6.5  # per-pad normal force on the strip's handle (N): its friction holds the strip against yaw
    push_force = 5.0  # axial force the insertion regulates to (N): above the shutters' 3.5 N
    search_force = 1.0  # axial force while searching (N): light, so the prongs slide over the face smoothly
    jam_force = 1.5  # axial force that, with the plug stalled outside the hole, is a jam (N)
    compliance = 5e-5  # admittance: step of the commanded push per newton of force error (m/N)
    spiral_pitch = 0.0008  # radial growth per turn (m): under twice the 0.5 mm per side play
    spiral_step = 0.0005  # arc length per control step (m)
    spiral_radius = 0.0035  # largest radius before the spiral starts again (m)
    carry_drop = 0.006  # the plug travels this far below the outlet's height until in front of it (m)
    carry_speed = 0.01  # most TCP travel per control step while carrying the plug (m)

    def __init__(self, env: PlugInsertionEnv):
        if env.cfg.action.mode != "ee_delta":
            raise ValueError("PlugInsertionExpert drives action.mode=ee_delta; set action.mode=ee_delta")
        if not env.cfg.touch.enabled:
            raise ValueError("PlugInsertionExpert regulates grip and insertion from touch; set touch.enabled=true")
        self.env, n = env, env.num_envs
        self.phase = np.zeros((n, 2), int)
        self.timer = np.zeros((n, 2), int)
        self.latch = np.zeros((n, 2, 3))  # grasp positions (m)
        self.grip = np.ones((n, 2))  # gripper opening commands
        self.error = np.zeros((n, 3))  # outlet estimate error in the outlet frame (m)
        self.seed: list[int] = [-1] * n  # episode seed the error was drawn for
        self.centre = np.zeros((n, 2))  # lateral (y, z) insertion centre in the estimated outlet frame (m)
        self.theta = np.zeros(n)  # spiral angle (rad)
        self.passes = np.zeros(n, int)  # spirals completed around the current centre
        self.push = np.zeros(n)  # commanded advance of the plug beyond where it is (m)
        self.stall = np.zeros(n)  # plug position along the outlet axis when it jammed (m)
        self.hist = np.zeros((n, 6))  # recent plug positions along the outlet axis (m), newest last
        self.best = np.zeros(n)  # deepest plug position along the outlet axis since the push began (m)
        self.idle = np.zeros(n, int)  # control steps without getting deeper
        self.lag = np.zeros(n, int)  # control steps the plug has trailed the spiral (caught on an edge)

    def reset(self, env_ids: np.ndarray | None = None) -> None:
        ids = slice(None) if env_ids is None else env_ids
        self.phase[ids] = 0
        self.timer[ids] = 0
        self.grip[ids] = 1.0

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        n = self.env.num_envs
        action = np.zeros((n, 2, 7))
        for i in range(n):
            self._draw_error(i)
            action[i, LEFT] = self._left(i, obs)
            action[i, RIGHT] = self._right(i, obs)
            self.timer[i] += 1
        return action.reshape(n, -1)

    # ------------------------------------------------------------------ helpers
    def _draw_error(self, i: int) -> None:
        seed = int(self.env.episode_seed[i])
        if seed != self.seed[i]:  # a new episode: the estimate's error follows from its seed
            rng = np.random.default_rng([seed, 0x9106])
            r, a = self.estimate_error * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
            self.error[i] = [0.0, r * np.cos(a), r * np.sin(a)]
            self.seed[i] = seed

    def _move(self, i: int, arm: int, pos: np.ndarray, rot: np.ndarray, grip: float,
              speed: float | None = None) -> np.ndarray:
        """ee_delta action (7,) moving arm's TCP target towards pos (m) and rotation matrix rot, at most `speed`
        (m per control step; default the action limit) along each axis."""
        from rho.sim.ik import quat_error
        from rho.sim.randomization import mat_to_quat

        cfg, target = self.env.cfg.action, self.env.ee_target[i, arm]
        step = cfg.max_ee_step_pos if speed is None else min(speed, cfg.max_ee_step_pos)
        dpos = np.clip(pos - target[:3], -step, step)
        drot = np.clip(quat_error(mat_to_quat(rot), target[3:]), -cfg.max_ee_step_rot, cfg.max_ee_step_rot)
        return np.r_[dpos, drot, grip]

    def _next(self, i: int, arm: int, phase: int | None = None) -> None:
        self.phase[i, arm] = self.phase[i, arm] + 1 if phase is None else phase
        self.timer[i, arm] = 0

    @staticmethod
    def _pads(obs, i: int, arm: str) -> np.ndarray:
        """(2, 3) net force (normal, shear x, shear y) of the arm's pads a and b (N)."""
        return np.stack([obs[f"touch_net_{arm}_{f}"][i] for f in "ab"]).astype(float)

    def _squeeze(self, width: float, force: float) -> float:
        """Opening command that squeezes an object `width` (m) wide with `force` (N) per pad: the servo's force is
        its stiffness times the gap between command and finger, and each pad carries half of it."""
        g = self.env.robot.gripper
        return float(np.clip((width / 2 - 2 * force / g.kp) / g.stroke, 0.0, 1.0))

    def _regulate(self, i: int, arm: int, pads: np.ndarray, force: float) -> None:
        """Integral grip-force control on the weaker pad's normal force."""
        g = self.env.robot.gripper
        err = pads[:, 0].min() - force
        self.grip[i, arm] = np.clip(self.grip[i, arm] + 0.5 * err * 2.0 / (g.kp * g.stroke), 0.0, 1.0)

    def _approach(self, i: int, arm: int, ee: np.ndarray, goal: np.ndarray, rot: np.ndarray, width: float,
                  force: float) -> np.ndarray:
        """Phases above (8 cm over goal) → down to goal → close until both pads press; returns the action."""
        ph = self.phase[i, arm]
        above = goal + 0.08 * UP
        if ph == 0 and np.linalg.norm(above - ee[:3]) < 0.01 and self._rot_err(ee, rot) < 0.05:
            self._next(i, arm)
        elif ph == 1 and np.linalg.norm(goal - ee[:3]) < 0.004:
            self.latch[i, arm] = goal
            self.grip[i, arm] = self._squeeze(width, force) - 0.05  # close a little past, then regulate
            self._next(i, arm)
        if ph < 2:
            return self._move(i, arm, above if ph == 0 else goal, rot, 1.0)
        return self._move(i, arm, self.latch[i, arm], rot, self.grip[i, arm])

    @staticmethod
    def _rot_err(ee: np.ndarray, rot: np.ndarray) -> float:
        """Angle (rad) between the measured TCP orientation and rot."""
        rt = _quats_to_mats(ee[None, 3:])[0]
        return float(np.arccos(np.clip((np.trace(rot.T @ rt) - 1) / 2, -1, 1)))

    # ------------------------------------------------------------------ left arm: hold the strip
    def _left(self, i: int, obs) -> np.ndarray:
        s = self.env.asset.strip
        strip = obs["strip_pose"][i].astype(float)
        rs = _quats_to_mats(strip[None, 3:])[0]
        handle = strip[:3] + rs @ np.array([-s.depth - s.handle[0] / 2, 0.0, s.height - 0.015])
        ee = obs["ee_pose"][i, LEFT].astype(float)
        pads = self._pads(obs, i, "left")
        if self.phase[i, LEFT] >= L_CLOSE:
            self._regulate(i, LEFT, pads, self.hold_force)
            pressed = pads[:, 0].min() > 0.7 * self.hold_force and self.timer[i, LEFT] > 3
            if self.phase[i, LEFT] == L_CLOSE and pressed:
                self._next(i, LEFT)
        return self._approach(i, LEFT, ee, handle, _top_down(rs[:, 1]), s.handle[1], self.hold_force)

    # ------------------------------------------------------------------ right arm: pick and insert the plug
    def _right(self, i: int, obs) -> np.ndarray:
        plug = obs["plug_pose"][i].astype(float)
        rp = _quats_to_mats(plug[None, 3:])[0]
        ee = obs["ee_pose"][i, RIGHT].astype(float)
        pads = self._pads(obs, i, "right")
        ph = self.phase[i, RIGHT]
        if ph >= R_CLOSE:
            self._regulate(i, RIGHT, pads, self.grip_force)
        if ph > R_CLOSE and pads[:, 0].max() < 0.3 and self.timer[i, RIGHT] > 5:  # lost it: pick it up again
            self._next(i, RIGHT, R_ABOVE)
            ph = R_ABOVE
        if ph <= R_CLOSE:
            if ph == R_CLOSE and pads[:, 0].min() > 0.7 * self.grip_force and self.timer[i, RIGHT] > 3:
                self._next(i, RIGHT)
            grasp = plug[:3] + GRIP_BEHIND * rp[:, 0]
            return self._approach(i, RIGHT, ee, grasp, _top_down(-rp[:, 1]), self.env.asset.plug.housing[1],
                                  self.grip_force)
        if ph == R_LIFT:  # to the outlet's height, no higher: carried there, it passes under a hood
            goal = np.r_[self.latch[i, RIGHT][:2], self._outlet(obs, i)[0][2] - self.carry_drop]
            if np.linalg.norm(goal - ee[:3]) < 0.005:
                self._next(i, RIGHT)
            return self._move(i, RIGHT, goal, _top_down(-rp[:, 1]), self.grip[i, RIGHT])
        return self._insert(i, obs, plug[:3], rp, ee, pads)

    def _outlet(self, obs, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Estimated outlet centre (m) and frame: the true one off by this episode's estimate error."""
        sock = obs["socket_pose"][i].astype(float)
        ro = _quats_to_mats(sock[None, 3:])[0]
        return sock[:3] + ro @ self.error[i], ro

    @staticmethod
    def _tcp_for(p_des, r_des, p, rp, ee) -> tuple[np.ndarray, np.ndarray]:
        """TCP pose that puts the plug frame at (p_des, r_des), keeping the current grasp."""
        rt = _quats_to_mats(ee[None, 3:])[0]
        rel = r_des @ rp.T
        return p_des + rel @ (ee[:3] - p), rel @ rt

    def _insert(self, i: int, obs, p, rp, ee, pads) -> np.ndarray:
        ph = self.phase[i, RIGHT]
        o, ro = self._outlet(obs, i)
        kind = PLUG_TYPES[int(np.argmax(obs["plug_type"][i]))]
        length = next(spec.length for spec in self.env.asset.strip.plugs if spec.kind == kind)
        local = ro.T @ (p - o)  # plug face in the estimated outlet frame
        self.hist[i] = np.r_[self.hist[i, 1:], local[0]]
        # pads feel the plug's pull along the TCP z axis as shear y (+ on pad a, − on pad b)
        z_tcp = _quats_to_mats(ee[None, 3:])[0][:, 2]
        force = (pads[0, 2] - pads[1, 2]) * float(z_tcp @ ro[:, 0])  # the socket pushing the plug out (N)
        if ph == R_CARRY:
            held = self.phase[i, LEFT] == L_HOLD  # wait, well clear, until the strip is held
            # travel a little low, under where a hood could be, and rise once in front of the outlet
            low = 0.0 if abs(local[1]) < 0.005 else -self.carry_drop
            target = np.array([length + (0.015 if held else 0.04), 0.0, low])
            if held and np.linalg.norm(local - target) < 0.0015:
                self.centre[i], self.theta[i], self.passes[i] = 0.0, 0.0, 0
                self._start_push(i, local)
        elif ph == R_INSERT:
            target = self._push(i, local, force, length)
        elif ph == R_SEARCH:
            target = self._search(i, local, force)
        else:
            target = self._retreat(i, local)
        pos, rot = self._tcp_for(o + ro @ target, ro, p, rp, ee)
        return self._move(i, RIGHT, pos, rot, self.grip[i, RIGHT], self.carry_speed if ph == R_CARRY else None)

    def _admit(self, i: int, force: float, goal: float, most: float) -> None:
        """Admittance on the push: advance more while the force is under `goal` (N), less above it."""
        self.push[i] = np.clip(self.push[i] + self.compliance * (goal - force), 0.0, most)

    def _start_push(self, i: int, local: np.ndarray) -> None:
        self.push[i], self.best[i], self.idle[i] = 0.0, local[0], 0
        self._next(i, RIGHT, R_INSERT)

    def _push(self, i: int, local: np.ndarray, force: float, length: float) -> np.ndarray:
        """Advance along the outlet axis at a regulated force; a jam (stalled, pushing, tips outside) searches, and
        a plug stuck part-way for a second backs off and tries again."""
        outside = local[0] > length - 0.003  # prongs not in yet: approach the face gently
        self._admit(i, force, self.push_force, 0.003)
        stalled = np.ptp(self.hist[i]) < 0.0003 and self.timer[i, RIGHT] > len(self.hist[i])
        self.idle[i] = 0 if local[0] < self.best[i] - 0.0003 else self.idle[i] + 1
        self.best[i] = min(self.best[i], local[0])
        if force > self.jam_force and stalled and outside:
            self.stall[i], self.lag[i] = local[0], 0
            self._next(i, RIGHT, R_SEARCH)
        elif self.idle[i] > 50:
            self.stall[i] = local[0]
            self._next(i, RIGHT, R_RETREAT)
        return np.array([local[0] - self.push[i], *self._spiral(i)])

    def _radius(self, i: int) -> float:
        """The spiral's radius (m); every other pass runs half a pitch out, between the previous pass's turns."""
        return self.spiral_pitch * (self.theta[i] / (2 * np.pi) + 0.5 * (self.passes[i] % 2))

    def _spiral(self, i: int) -> np.ndarray:
        """(y, z) of the spiral's current point in the estimated outlet frame (m)."""
        return self.centre[i] + self._radius(i) * np.array([np.cos(self.theta[i]), np.sin(self.theta[i])])

    def _search(self, i: int, local: np.ndarray, force: float) -> np.ndarray:
        """Spiral around the insertion centre, pressing lightly, until the plug slides forward into the hole. A plug
        that trails the spiral is caught on a hole's edge: dragging it would drag the strip, so it backs off."""
        advanced = self.stall[i] - local[0]
        caught = np.linalg.norm(self._spiral(i) - local[1:]) > 0.001  # trailing the spiral: held by a hole's edge
        if advanced > 0.0006 or (caught and advanced > 0.0003):  # in, or partly: push from here, and if it jams
            self.centre[i], self.theta[i], self.passes[i] = local[1:], 0.0, 0  # again, search around here
            self._start_push(i, local)
            return np.array([local[0], *local[1:]])
        self._admit(i, force, self.search_force, 0.002)
        if force > 0.3 * self.search_force:  # slide on the face only while touching it
            r = self._radius(i)
            self.theta[i] += self.spiral_step / max(r, 0.0005)
            if r > self.spiral_radius:  # covered: start again, between this pass's turns
                self.theta[i], self.passes[i] = 0.0, self.passes[i] + 1
        lateral = self._spiral(i)
        self.lag[i] = self.lag[i] + 1 if np.linalg.norm(lateral - local[1:]) > 0.0025 else 0
        if self.lag[i] > 15:
            self._next(i, RIGHT, R_RETREAT)
        return np.array([local[0] - self.push[i], *lateral])

    def _retreat(self, i: int, local: np.ndarray) -> np.ndarray:
        """Back straight off 4 mm from where the plug stuck, then push again where the spiral had got to."""
        target = np.array([self.stall[i] + 0.004, *local[1:]])
        if local[0] > self.stall[i] + 0.003:
            self._start_push(i, local)
        return target


@register_expert("plug_insertion_occluded", action_mode="ee_delta")
class PlugInsertionOccludedExpert(PlugInsertionExpert):
    """`PlugInsertionExpert` for the hooded strip: the overhead camera loses the outlet in the last centimetres, so
    the outlet estimate is worse (up to 3 mm off) and the touch search covers a wider spiral."""

    name, version = "plug_insertion_occluded_scripted", "1.0"
    estimate_error = 0.003  # m
    spiral_radius = 0.0045  # m
