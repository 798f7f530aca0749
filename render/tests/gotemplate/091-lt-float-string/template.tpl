{{ lt .ratio "a" }}
