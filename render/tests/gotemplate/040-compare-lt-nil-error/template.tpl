{{ lt .nope 1 }}
