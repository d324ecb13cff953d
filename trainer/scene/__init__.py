"""Scene stage: from one raw fixed-camera video, find moving people without labels and model the scene.

Entry point: trainer.scene.run.build_scene(video, out_dir, params).
"""
