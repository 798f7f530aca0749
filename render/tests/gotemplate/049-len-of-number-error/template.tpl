{{ len .replicas }}
