# aihf: in progress. The objectives (aihf.losses) and the TRL trainer (aihf.trainer) are built and tested
# (make test-aihf); aihf-oracle (the demo), aihf-mujoco and aihf-paper come next: see packages/aihf/README.md.
