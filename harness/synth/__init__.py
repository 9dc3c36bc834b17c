"""Procedural H&E-like tissue: drawn as stain concentrations, rendered by Beer-Lambert.

The three stages are separate so later tasks can vary one while holding the others fixed:
`tissue` draws haematoxylin/eosin concentration maps from a tissue class and factors,
`stain` turns concentrations into RGB through a staining (stain vectors + intensities),
`scanner` applies an acquisition profile (blur, gamma, colour, noise, JPEG).
"""
