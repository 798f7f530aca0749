{{ half 3 }}
