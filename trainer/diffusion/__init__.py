"""Person generator: a mask-conditioned diffusion model that makes RGBA person cutouts.

defaults.py    presets (tiny / base / large) as one pydantic tree
unet.py        the noise predictor (image + mask in, noise out)
gaussian_diffusion.py  beta schedules, q_sample, the weighted noise loss
samplers.py    DDPM and DDIM sampling
data.py        image+mask folders or RGBA cutouts -> letterboxed person crops
masks.py       the mask bank that sampling draws silhouettes from
train.py       the training loop (single process, or DDP under torchrun)
sample.py      checkpoint -> RGBA cutouts + contact sheet
score.py       person-likeness, silhouette IoU, optional KID
cli.py         `trainer persons train|sample|score`
"""
