// A non-convex domain: a 3/4 annulus, inner radius 1, outer radius 5.
SetFactory("OpenCASCADE");
Disk(1) = {0, 0, 0, 5, 5};
Disk(2) = {0, 0, 0, 1, 1};
Rectangle(3) = {0, -6, 0, 6, 6};
BooleanDifference(4) = { Surface{1}; Delete; }{ Surface{2, 3}; Delete; };
Physical Surface("omega", 1) = {4};
Mesh.CharacteristicLengthMax = 0.3;
