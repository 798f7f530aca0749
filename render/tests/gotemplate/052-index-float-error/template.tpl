{{ index .list .replicas }}
