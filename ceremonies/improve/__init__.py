"""The self-improvement cycle (SPEC §9): discovery, generation, validation, deployment, monitoring
and learning, each recorded with its evidence. ``ceremonies.improve.cycle.run_cycle`` runs one."""
