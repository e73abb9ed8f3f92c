"""``python -m darts``: the ``darts`` script (:func:`darts.compat.script`), for environments
where the console script is not on ``PATH``."""

from darts.compat import script

script()
