"""Seeded synthetic multi-camera person re-ID data, written as a Market-1501-layout zip.

Identities are combinations of discrete attributes (clothing colours, hair, sleeves,
stripes, logo, bag, body shape); they come in small groups whose members differ in
one or two attributes, so look-alike people exist (`people`). Every camera has its own hue
shift (a rotation of colours about the grey axis, as under different light sources), colour
cast, saturation, contrast, brightness, blur, noise, background, framing and
dominant viewpoint (`cameras`); front / back / side decides whether a logo, backpack or bag is
seen (`drawing`). Each image adds pose, placement and colour jitter and sometimes an occluder
(`render`). `dataset` decides who appears where and writes the zip.
"""
from .cameras import Camera, hue_rotation, make_cameras
from .dataset import plan_records, write_synthetic_zip
from .people import Identity, make_identities
from .render import Record, render_image

__all__ = [
    "Camera", "Identity", "Record", "hue_rotation", "make_cameras", "make_identities", "plan_records",
    "render_image", "write_synthetic_zip",
]
