// An empty module: stands in for optional dependencies the CLI bundle never uses.
module.exports = {};
