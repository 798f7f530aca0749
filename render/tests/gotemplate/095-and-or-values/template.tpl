[{{ and .name .list }}] [{{ or .empty .nope }}] [{{ or .empty .emptyList .emptyMap 0 }}] [{{ and .labels }}]
