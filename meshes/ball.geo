// Ball of radius R centred at 0 (3-D), mesh size h; OpenCASCADE kernel.
// pdeflow generates it with `pdeflow mesh ball`; by hand: gmsh -3 ball.geo -setnumber h 0.5
SetFactory("OpenCASCADE");
DefineConstant[ R = 3, h = 0.75 ];

Sphere(1) = {0, 0, 0, R};
MeshSize{ PointsOf{ Volume{1}; } } = h;

Mesh.MeshSizeMax = h;
Physical Surface("boundary", 1) = {1};
Physical Volume("domain", 1) = {1};
