// A 3D box with a spherical obstacle: [-3, 3]^3 minus the ball of radius 0.8 centred at
// (1, 1, 1); tetrahedra of size about h (default 0.5; Domain.from_gmsh("box_ball.geo",
// h=...) or [domain] h = ... sets it, and h-ladders of convergence studies halve it and
// remesh, so the sphere is resolved at every level).
// Volume: 216 - 4/3 pi 0.8^3 = 213.855...; the P1 mesh's sphere is a polyhedron inscribed
// in it, so the meshed volume is larger by O(h^2).
// Used by examples/convergence_fp_box_ball.toml and examples/bridge_box_ball.toml.
SetFactory("OpenCASCADE");
If (!Exists(h))
  h = 0.5;
EndIf
Box(1) = {-3, -3, -3, 6, 6, 6};
Sphere(2) = {1, 1, 1, 0.8};
BooleanDifference(3) = { Volume{1}; Delete; }{ Volume{2}; Delete; };
Physical Volume("omega", 1) = {3};
Physical Surface("walls", 2) = Boundary{ Volume{3}; };
Mesh.CharacteristicLengthMin = h;
Mesh.CharacteristicLengthMax = h;
Mesh.CharacteristicLengthFromCurvature = 0;
Mesh.CharacteristicLengthExtendFromBoundary = 0;
// HXT: gmsh's fast 3D Delaunay (4.3e6 tetrahedra in 20 s, the default took 360 s).
Mesh.Algorithm3D = 10;
