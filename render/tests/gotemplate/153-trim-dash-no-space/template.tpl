{{-.name}}
