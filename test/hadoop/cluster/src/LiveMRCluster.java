// A real Hadoop cluster for LiveMR's tests, in one JVM: MiniDFSCluster (NameNode + DataNodes) and
// MiniMRYarnCluster (ResourceManager, NodeManagers, JobHistoryServer), from Maven Central's Hadoop
// test jars (test/hadoop/cluster/pom.xml). Started by test/hadoop/cluster.ts, which runs it as an
// unprivileged user (containers run as the NodeManager's user) and on loopback (a hosts file maps
// this host's name to 127.0.0.1).
//
//   java LiveMRCluster WORKDIR NODEMANAGERS [key=value ...]
//
// livemr.nodemanager.hosts=H0,H1,... (not passed on to Hadoop) gives NodeManager i the host name Hi:
// its RPC and web servers listen on Hi's address (the JVM hosts file maps each to its own 127.0.0.x),
// so its NodeId — the reverse lookup of the address its RPC server listens on — names Hi. Otherwise
// every NodeManager listens on this host's name and registers as `localhost`.
//
// The JobHistoryServer starts after the ResourceManager and the NodeManagers: every web app of the
// JVM is served through Guice's GuiceFilter, whose filter pipeline is a static of the class — the web
// app created last serves the requests of all (Guice warns "Multiple Servlet injectors detected").
// MiniMRYarnCluster starts its JobHistoryServer first, so its port answered /ws/v1/history with 404
// and /ws/v1/node/info with 200 (the last NodeManager's pipeline). Started last, the
// JobHistoryServer's REST API works; the ResourceManager's and NodeManagers' web apps then answer
// with the JobHistoryServer's (the tests use neither).
//
// Writes the live client configuration (real ports) to WORKDIR/conf/{core,hdfs,yarn,mapred}-site.xml,
// prints one line "LIVEMR-CLUSTER-READY {json}" and runs until its stdin closes; then it stops the
// clusters (the NodeManagers kill their containers) and exits. So the cluster cannot outlive the
// test process that started it.
import java.io.File;
import java.io.FileOutputStream;
import java.io.OutputStream;
import java.util.ArrayList;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.mapreduce.v2.MiniMRYarnCluster;
import org.apache.hadoop.mapreduce.v2.hs.HistoryClientService;
import org.apache.hadoop.mapreduce.v2.jobhistory.JHAdminConfig;
import org.apache.hadoop.mapreduce.v2.util.MRWebAppUtil;
import org.apache.hadoop.service.Service;
import org.apache.hadoop.yarn.api.records.NodeReport;
import org.apache.hadoop.yarn.api.records.NodeState;
import org.apache.hadoop.yarn.client.api.YarnClient;
import org.apache.hadoop.yarn.conf.YarnConfiguration;

public class LiveMRCluster {
  /** MiniMRYarnCluster with its JobHistoryServer moved behind the ResourceManager and NodeManagers. */
  static final class Cluster extends MiniMRYarnCluster {
    Cluster(String name, int nms) { super(name, nms); }

    @Override
    public void serviceInit(Configuration conf) throws Exception {
      super.serviceInit(conf);
      for (Service s : new ArrayList<>(getServices())) {
        if (s.getClass().getSimpleName().equals("JobHistoryServerWrapper")) {
          removeService(s);
          addService(s);
        }
      }
    }
  }

  public static void main(String[] args) throws Exception {
    File work = new File(args[0]).getAbsoluteFile();
    int nms = Integer.parseInt(args[1]);
    Configuration conf = new YarnConfiguration();
    for (int i = 2; i < args.length; i++) {
      int eq = args[i].indexOf('=');
      conf.set(args[i].substring(0, eq), args[i].substring(eq + 1));
    }
    String[] hosts = conf.getTrimmedStrings("livemr.nodemanager.hosts");
    conf.unset("livemr.nodemanager.hosts");
    if (hosts.length > 0 && hosts.length != nms) throw new IllegalArgumentException("livemr.nodemanager.hosts names " + hosts.length + " hosts for " + nms + " NodeManagers");
    conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, new File(work, "dfs").getPath());
    MiniDFSCluster dfs = new MiniDFSCluster.Builder(conf).numDataNodes(1).format(true).build();
    dfs.waitActive();
    conf.set("fs.defaultFS", dfs.getURI().toString());
    Cluster yarn = new Cluster("livemr", nms);
    Thread stopper = new Thread(() -> {
      try { yarn.stop(); } catch (Throwable t) { t.printStackTrace(); }
      try { dfs.shutdown(); } catch (Throwable t) { t.printStackTrace(); }
    });
    Runtime.getRuntime().addShutdownHook(stopper);
    yarn.init(conf);
    // MiniYARNCluster sets each NodeManager's addresses to this host's name as it inits them; the
    // NodeManagers read them again when they start, from the configuration they were inited with
    for (int i = 0; i < hosts.length; i++) {
      Configuration c = yarn.getNodeManager(i).getConfig();
      c.set(YarnConfiguration.NM_ADDRESS, hosts[i] + ":0");
      c.set(YarnConfiguration.NM_WEBAPP_ADDRESS, hosts[i] + ":0");
    }
    yarn.start();
    Configuration live = yarn.getConfig();
    // MiniMRYarnCluster copies the JobHistoryServer's addresses into the live configuration as soon
    // as its state reads STARTED, which a service enters before it binds anything (started last, it
    // has bound nothing by then): wait for its RPC server, bound after its web app, and copy them here
    HistoryClientService hcs = yarn.getHistoryServer().getClientService();
    for (int tries = 0; hcs.getBindAddress() == null; tries++) {
      if (tries > 1200) throw new IllegalStateException("the JobHistoryServer did not start");
      Thread.sleep(100);
    }
    live.set(JHAdminConfig.MR_HISTORY_ADDRESS, hcs.getConfig().get(JHAdminConfig.MR_HISTORY_ADDRESS));
    MRWebAppUtil.setJHSWebappURLWithoutScheme(live, MRWebAppUtil.getJHSWebappURLWithoutScheme(hcs.getConfig()));

    // wait until every NodeManager has registered, and name them
    YarnClient yc = YarnClient.createYarnClient();
    yc.init(live);
    yc.start();
    StringBuilder nodes = new StringBuilder();
    for (int tries = 0; ; tries++) {
      java.util.List<NodeReport> rs = yc.getNodeReports(NodeState.RUNNING);
      if (rs.size() >= nms) {
        for (NodeReport r : rs) {
          if (nodes.length() > 0) nodes.append(',');
          nodes.append('"').append(r.getNodeId().toString()).append('"');
        }
        break;
      }
      if (tries > 600) throw new IllegalStateException("NodeManagers did not register");
      Thread.sleep(100);
    }
    yc.stop();
    StringBuilder byIndex = new StringBuilder();
    for (int i = 0; i < nms; i++) {
      if (i > 0) byIndex.append(',');
      byIndex.append('"').append(yarn.getNodeManager(i).getNMContext().getNodeId().toString()).append('"');
    }

    File confDir = new File(work, "conf");
    confDir.mkdirs();
    for (String f : new String[] {"core-site.xml", "hdfs-site.xml", "yarn-site.xml", "mapred-site.xml"}) {
      // the whole live configuration in each file: a later *-default.xml must not override it
      try (OutputStream o = new FileOutputStream(new File(confDir, f))) { live.writeXml(o); }
    }
    System.out.println("LIVEMR-CLUSTER-READY {\"fs\":\"" + dfs.getURI() + "\",\"rm\":\"" + live.get(YarnConfiguration.RM_ADDRESS)
        + "\",\"jhsWeb\":\"" + live.get("mapreduce.jobhistory.webapp.address") + "\",\"rmWeb\":\"" + live.get(YarnConfiguration.RM_WEBAPP_ADDRESS)
        + "\",\"nodes\":[" + nodes + "],\"nodeManagers\":[" + byIndex + "]}");
    System.out.flush();
    // run until the test process closes our stdin (or dies)
    while (System.in.read() >= 0) { }
    System.exit(0); // the shutdown hook stops YARN, then HDFS
  }
}
