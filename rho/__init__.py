"""rho: tactile-rich bimanual robot learning in simulation."""

__version__ = "0.1.0"
