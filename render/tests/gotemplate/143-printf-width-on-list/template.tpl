{{ printf "%4d|%-3s|%x" .ints .list .ints }}
