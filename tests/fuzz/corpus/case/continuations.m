function mpc = tiny % comment
mpc.version = '2';
mpc.baseMVA = 100;
mpc.bus = [ %% header
  1, 3, 0, 0, 0, 0, 1, 1, 0, 10, 1, 1, 1
  2  1  5  ...  split
  0  0  0  1  1  0  10  1  1  1; 3 1 -1.5e1 0 0 0 1 1 0 10 1 1 1
];
mpc.gen = [1 5 0 Inf -Inf 1 100 1 9 0];
mpc.branch = [1 2 0 0.1 0 0 0 0 0 0 1; 2 3 0 0.1 0 0 0 0 0.95 0 1;
2 3 0 0.2 0 0 0 0 0 0 1];
mpc.bus_name = { 'a;b'; 'it''s' };
pf = 0.9;
mpc.bus(:, QD) = mpc.bus(:, PD) * sin(acos(pf));
