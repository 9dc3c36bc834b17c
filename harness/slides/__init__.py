"""Whole-slide images: tissue mask, tile grid at a target resolution, tile reading (OpenSlide)."""
