"""Modbus device simulator: SunSpec inverters and meters that follow the sun, for the demo and the tests.

``sunspec_image`` encodes model blocks, ``solar`` computes the day, ``devices``
holds the simulated inverter and meter, ``server`` serves them over TCP or RTU,
``config`` validates the YAML and ``cli`` is ``terril simulate``.
"""
