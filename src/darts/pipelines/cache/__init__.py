"""`darts cache`: the composition behind list, verify, repair, prune, export and import.

The mechanics live in the store layer (`darts.store.inventory`, `scene_damage`, `prune`,
`transfer`, and the cube's `verify`, `tile_removal`, `reclaim`, `cube_copy`); these
modules decide which stores and cubes a command works on (`targets`), and bring in what
the store layer must not know: the sources that fetch damaged data again (`repair`) and
the auxiliary tiles a scene needs (`transfer`).
"""
