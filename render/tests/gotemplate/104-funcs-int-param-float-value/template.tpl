{{ repeat .replicas "x" }}
