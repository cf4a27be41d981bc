"""Pictures of what happened: image grids (and, as they land, curves and the HTML report)."""
