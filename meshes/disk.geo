// Disk of radius 6 centred at the origin, triangles of size about 0.4.
// Used by tests and examples: bridgesolve.Domain.from_gmsh("disk.geo").
SetFactory("OpenCASCADE");
Disk(1) = {0, 0, 0, 6, 6};
Physical Surface("omega", 1) = {1};
Physical Curve("boundary", 2) = {1};
MeshSize{ PointsOf{ Surface{1}; } } = 0.4;
Mesh.CharacteristicLengthMax = 0.4;
