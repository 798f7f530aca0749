{{ printf .replicas }}
